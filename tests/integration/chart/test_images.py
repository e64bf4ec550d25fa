"""The Dockerfiles, as far as they can be checked without a Docker engine (none runs here, so
the images are not built by these tests), each image as its recipe (pagestream.stack.images
.RECIPES: Dockerfile, target, build arguments) builds it: every file its stages COPY from the
build context exists and passes the Dockerfile's .dockerignore, the paths baked into the Spark
image are the operator's, the images run as non-root with pinned bases and their app's own
entrypoint, and the `uv sync` each one runs succeeds on the context it COPYs (uv's dry run,
from uv.lock alone) and installs exactly its component."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from pagestream.stack.images import RECIPES, dockerfile_stages, ignore_file
from pagestream.stack.images import dockerfile_instructions as instructions
from pagestream.stack.paths import REPO_ROOT
from pagestream_operator import render

IMAGES = REPO_ROOT / "images"
DOCKERFILES = {c: REPO_ROOT / r.dockerfile for c, r in RECIPES.items()}
PACKAGES = {
    "operator": "pagestream-operator",
    "simulator": "pagestream-simulator",
    "spark": "pagestream-spark",
}


def expand(text: str, name: str) -> str:
    """``$ARG``/``${ARG}`` replaced by the component's build argument (every one used has one)."""
    args = RECIPES[name].args
    return re.sub(r"\$\{?(\w+)\}?", lambda m: args[m.group(1)], text)


def steps(name: str) -> list[tuple[str, str]]:
    """The instructions of the stages a build of the component's target runs, FROMs included."""
    return [
        (word, rest)
        for stage in dockerfile_stages(DOCKERFILES[name], RECIPES[name].target)
        for word, rest in [("FROM", stage.image), *stage.steps]
    ]


def final_steps(name: str) -> list[tuple[str, str]]:
    """The instructions of the image itself: its target stage and the stages it is FROM."""
    stages = {s.name: s for s in dockerfile_stages(DOCKERFILES[name], RECIPES[name].target)}
    chain = [list(stages.values())[-1]]
    while chain[-1].image in stages:
        chain.append(stages[chain[-1].image])
    return [(w, r) for stage in reversed(chain) for w, r in [("FROM", stage.image), *stage.steps]]


def global_args(name: str) -> dict[str, str]:
    """The Dockerfile's ARG defaults before its first FROM."""
    out = {}
    for word, rest in instructions(DOCKERFILES[name]):
        if word == "FROM":
            break
        if word == "ARG" and "=" in rest:
            key, value = rest.split("=", 1)
            out[key] = value
    return out


def context_copies(name: str) -> list[tuple[str, str]]:
    """(source, destination) of every COPY from the build context (not --from a stage) in a
    build of the component, its build arguments expanded."""
    copies = []
    for word, rest in steps(name):
        if word == "COPY" and "--from=" not in rest:
            *sources, dest = expand(rest, name).split()
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


def test_every_dockerfile_builds_a_component() -> None:
    assert set(DOCKERFILES) == set(PACKAGES)
    assert set(DOCKERFILES.values()) == set(IMAGES.glob("*/Dockerfile"))
    # The Python apps are targets of one Dockerfile, each picked with its APP.
    for app in ("operator", "simulator"):
        assert RECIPES[app].target == app and RECIPES[app].args == {"APP": app}
    assert DOCKERFILES["operator"] == DOCKERFILES["simulator"] != DOCKERFILES["spark"]


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_everything_copied_exists_and_is_not_ignored(name: str) -> None:
    dockerfile = DOCKERFILES[name]
    patterns = [
        line.strip()
        for line in ignore_file(dockerfile).read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copies = context_copies(name)
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
    args = global_args(name)
    stage_names = {s.name for s in dockerfile_stages(DOCKERFILES[name], RECIPES[name].target)}
    for word, image in steps(name):
        if word == "FROM" and image not in stage_names:
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
            repo, _, tag = image.rpartition(":")
            assert repo and tag and tag != "latest" and re.search(r"\d", tag), image
    # The image itself: its target stage, and the stages that one is built FROM.
    final = final_steps(name)
    users = [rest for word, rest in final if word == "USER"]
    assert len(users) == 1 and users[0].split(":")[0] not in {"root", "0"}
    assert not any(w == "RUN" and "uv " in r for w, r in final), "no build tools in the final stage"


@pytest.mark.parametrize("name", ["operator", "simulator"])
def test_each_app_image_runs_its_own_apps_entrypoint(name: str) -> None:
    """The target and the APP the recipe gives go together: the image's ENTRYPOINT is a
    console script of the package APP installs, and its title is the image's name."""
    final = final_steps(name)
    (entrypoint,) = [json.loads(r) for w, r in final if w == "ENTRYPOINT"]
    project = tomllib.loads((REPO_ROOT / RECIPES[name].args["APP"] / "pyproject.toml").read_text())
    assert project["project"]["name"] == PACKAGES[name]
    assert entrypoint[0] in project["project"]["scripts"]
    labels = " ".join(r for w, r in final if w == "LABEL")
    assert f'org.opencontainers.image.title="pagestream-{name}"' in labels
    assert "org.opencontainers.image.source=" in labels


def test_spark_image_bakes_what_the_operator_renders() -> None:
    copies = dict((dest, src) for src, dest in context_copies("spark"))
    main_path = render.JOB_MAIN_FILE.removeprefix("local://")
    assert copies[main_path] == "spark-apps/main.py"
    spark = instructions(DOCKERFILES["spark"])
    (jar_copy,) = [r for w, r in spark if w == "COPY" and "--from=jars" in r]
    assert jar_copy.split()[-1] == render.JOB_JARS_DIR
    run_mvn = [r for w, r in spark if w == "RUN" and "mvn " in r]
    assert run_mvn and "tools/maven/spark/pom.xml" in " ".join(
        s for s, _ in context_copies("spark")
    )
    assert "dependency:copy-dependencies" in run_mvn[0] and "-DincludeScope=runtime" in run_mvn[0]
    froms = [r for w, r in spark if w == "FROM"]
    args = dict(r.split("=", 1) for w, r in spark if w == "ARG" and "=" in r)
    assert args["SPARK_IMAGE"].startswith("apache/spark:4.2.0-")
    assert "python3" in args["SPARK_IMAGE"] and froms[-1] == "${SPARK_IMAGE}"
    # On the official image the job's Python 3.11 is uv's own; only a build argument (the
    # local Debian base, pagestream.stack.images) switches to the base's python3.
    assert args["UV_PYTHON_PREFERENCE"] == "only-managed"


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_uv_sync_installs_only_the_component(name: str, tmp_path: Path) -> None:
    context = tmp_path / "context"
    for source, _ in context_copies(name):
        if source.startswith("tools/") or source.endswith("main.py"):
            continue
        src = REPO_ROOT / source
        dst = context / source
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copyfile(src, dst)
    # RUN sees the build arguments as environment variables: the shell expands them.
    syncs = [
        expand(r, name)
        for w, r in steps(name)
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
    args = global_args(name)
    assert args["UV_IMAGE"] == f"ghcr.io/astral-sh/uv:{pinned.group(1)}"
