"""The Dockerfiles, as far as they can be checked without a Docker engine (none runs here, so
the images are not built by these tests): every file they COPY from the build context exists
and passes their .dockerignore, the paths baked into the Spark image are the operator's, the
images run as non-root with pinned bases, and the `uv sync` each one runs succeeds on the
context it COPYs (uv's dry run, from uv.lock alone) and installs exactly its component."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pagestream.stack.images import dockerfile_instructions as instructions
from pagestream.stack.paths import REPO_ROOT
from pagestream_operator import render

IMAGES = REPO_ROOT / "images"
DOCKERFILES = {p.parent.name: p for p in sorted(IMAGES.glob("*/Dockerfile"))}
PACKAGES = {
    "operator": "pagestream-operator",
    "simulator": "pagestream-simulator",
    "spark": "pagestream-spark",
}


def context_copies(path: Path) -> list[tuple[str, str]]:
    """(source, destination) of every COPY from the build context (not --from a stage)."""
    copies = []
    for word, rest in instructions(path):
        if word == "COPY" and "--from=" not in rest:
            *sources, dest = rest.split()
            copies += [(s, dest) for s in sources]
    return copies


def ignored(relative: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last matching pattern wins; `!` re-includes."""
    verdict = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        if fnmatch.fnmatch(relative, pat) or fnmatch.fnmatch(relative, pat.replace("/**", "/*")):
            verdict = not negate
    return verdict


def test_there_is_one_dockerfile_per_component() -> None:
    assert set(DOCKERFILES) == set(PACKAGES)


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_everything_copied_exists_and_is_not_ignored(name: str) -> None:
    dockerfile = DOCKERFILES[name]
    patterns = [
        line.strip()
        for line in (dockerfile.parent / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copies = context_copies(dockerfile)
    assert copies
    for source, _ in copies:
        path = REPO_ROOT / source
        assert path.exists(), f"{name}: COPY {source}: no such file in the repository"
        files = [path] if path.is_file() else [p for p in path.rglob("*.py")]
        assert files, source
        for file in files:
            rel = file.relative_to(REPO_ROOT).as_posix()
            assert not ignored(rel, patterns), f"{name}: {rel} is excluded by .dockerignore"


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_bases_are_pinned_and_the_user_is_not_root(name: str) -> None:
    steps = instructions(DOCKERFILES[name])
    args = dict(rest.split("=", 1) for word, rest in steps if word == "ARG" and "=" in rest)
    for word, rest in steps:
        if word == "FROM":
            image = rest.split()[0]
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
            repo, _, tag = image.rpartition(":")
            assert repo and tag and tag != "latest" and re.search(r"\d", tag), image
    users = [rest for word, rest in steps if word == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    # The final stage: everything after the last FROM.
    last = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    final = steps[last:]
    assert [w for w, _ in final].count("USER") == 1
    assert not any(w == "RUN" and "uv " in r for w, r in final), "no build tools in the final stage"


def test_spark_image_bakes_what_the_operator_renders() -> None:
    copies = dict((dest, src) for src, dest in context_copies(DOCKERFILES["spark"]))
    main_path = render.JOB_MAIN_FILE.removeprefix("local://")
    assert copies[main_path] == "spark-apps/main.py"
    steps = instructions(DOCKERFILES["spark"])
    (jar_copy,) = [r for w, r in steps if w == "COPY" and "--from=jars" in r]
    assert jar_copy.split()[-1] == render.JOB_JARS_DIR
    run_mvn = [r for w, r in steps if w == "RUN" and "mvn " in r]
    assert run_mvn and "tools/maven/spark/pom.xml" in " ".join(
        s for s, _ in context_copies(DOCKERFILES["spark"])
    )
    assert "dependency:copy-dependencies" in run_mvn[0] and "-DincludeScope=runtime" in run_mvn[0]
    froms = [r for w, r in steps if w == "FROM"]
    args = dict(r.split("=", 1) for w, r in steps if w == "ARG" and "=" in r)
    assert args["SPARK_IMAGE"].startswith("apache/spark:4.2.0-")
    assert "python3" in args["SPARK_IMAGE"] and froms[-1] == "${SPARK_IMAGE}"
    # On the official image the job's Python 3.11 is uv's own; only a build argument (the
    # local Debian base, pagestream.stack.images) switches to the base's python3.
    assert args["UV_PYTHON_PREFERENCE"] == "only-managed"


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_uv_sync_installs_only_the_component(name: str, tmp_path: Path) -> None:
    dockerfile = DOCKERFILES[name]
    context = tmp_path / "context"
    for source, _ in context_copies(dockerfile):
        if source.startswith("tools/") or source.endswith("main.py"):
            continue
        src = REPO_ROOT / source
        dst = context / source
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copyfile(src, dst)
    syncs = [
        r
        for w, r in instructions(dockerfile)
        if w == "RUN"
        for r in r.split("&&")
        if "uv sync" in r
    ]
    assert syncs
    for command in syncs:
        argv = command.split()
        assert argv[:2] == ["uv", "sync"] and "--frozen" in argv and "--no-dev" in argv
        assert argv[argv.index("--package") + 1] == PACKAGES[name]
        proc = subprocess.run(
            [*argv, "--dry-run"],
            cwd=context,
            capture_output=True,
            text=True,
            check=False,
            env={
                "PATH": os.environ["PATH"],
                "HOME": os.environ.get("HOME", "/root"),
                "UV_PROJECT_ENVIRONMENT": str(tmp_path / "venv"),
                "UV_OFFLINE": "1",
            },
        )
        assert proc.returncode == 0, proc.stderr
    # The last sync installs the component itself and, of the workspace, only pagestream-common.
    planned = re.findall(r"^ \+ (\S+)", proc.stderr, re.M)
    workspace = {p.split("@")[0].split("==")[0] for p in planned if p.startswith("pagestream")}
    assert workspace == {PACKAGES[name], "pagestream-common"}, planned
    names = {re.split(r"[=@ ]", p)[0] for p in planned}
    # pyspark is never installed: the Spark image's distribution provides it, the others need none.
    assert "pyspark" not in names
    assert {"operator": "kopf", "simulator": "confluent-kafka", "spark": "pyarrow"}[name] in names
    assert "pytest" not in names and "ruff" not in names


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_images_use_the_uv_that_bootstrap_pins(name: str) -> None:
    """uv.lock is written by the uv dev/bootstrap.sh installs; an older uv may not read it."""
    pinned = re.search(r"^UV_VERSION=(\S+)$", (REPO_ROOT / "dev/bootstrap.sh").read_text(), re.M)
    assert pinned
    args = dict(
        rest.split("=", 1)
        for word, rest in instructions(DOCKERFILES[name])
        if word == "ARG" and "=" in rest
    )
    assert args["UV_IMAGE"] == f"ghcr.io/astral-sh/uv:{pinned.group(1)}"
