"""docs/kubernetes.md's quickstart: complete, in order, and every command in it exists: files
it names are in the repository, and every helm and kubectl command's subcommand and flags are
accepted by the real helm and kubectl (`--help` of that subcommand lists each flag)."""

from __future__ import annotations

import itertools
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml
from chart_harness import CHART, go_module_dir

from pagestream.stack.helm import Helm
from pagestream.stack.images import RECIPES
from pagestream.stack.paths import REPO_ROOT

pytestmark = pytest.mark.helm

DOC = REPO_ROOT / "docs" / "kubernetes.md"
TOOLS = {"kind", "kubectl", "docker", "helm", "skaffold", "openssl"}


def quickstart_commands() -> list[list[str]]:
    text = DOC.read_text().split("## Quickstart: kind", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip() and not line.strip().startswith("#"):
                commands.append(shlex.split(line))
    return commands


COMMANDS = quickstart_commands()


def position(predicate) -> int:  # type: ignore[no-untyped-def]
    return next(i for i, c in enumerate(COMMANDS) if predicate(c))


def test_quickstart_is_complete_and_in_order() -> None:
    assert {c[0] for c in COMMANDS} <= TOOLS
    steps = [
        position(lambda c: c[:3] == ["kind", "create", "cluster"]),
        position(lambda c: c[:2] == ["docker", "build"]),
        position(lambda c: c[:3] == ["kind", "load", "docker-image"]),
        position(lambda c: c[:3] == ["helm", "dependency", "build"]),
        position(lambda c: c[:2] == ["helm", "install"]),
        position(lambda c: c[:2] == ["helm", "test"]),
        position(lambda c: "pagestream-pii" in c and "secret" in c),
        position(lambda c: "manifests/examples/minimal.yaml" in c and "apply" in c),
        position(lambda c: c[:2] == ["skaffold", "dev"]),
    ]
    assert steps == sorted(steps), steps
    # The chart repositories added are those of Chart.yaml's dependencies.
    added = {c[4].rstrip("/") for c in COMMANDS if c[:3] == ["helm", "repo", "add"]}
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert added == {d["repository"].rstrip("/") for d in chart["dependencies"]}
    # Every component's image is built as its recipe says, and every built image is loaded
    # into kind.
    builds = [c for c in COMMANDS if c[:2] == ["docker", "build"]]
    assert sorted(map(build_recipe, builds), key=lambda b: b[0]) == [
        (c, r.dockerfile, r.target, dict(r.args)) for c, r in sorted(RECIPES.items())
    ]
    built = {c[c.index("-t") + 1] for c in builds}
    (load,) = [c for c in COMMANDS if c[:3] == ["kind", "load", "docker-image"]]
    assert built <= set(load)
    cluster = yaml.safe_load((REPO_ROOT / "manifests/kind-cluster.yaml").read_text())
    assert load[load.index("--name") + 1] == cluster["name"]


def build_recipe(command: list[str]) -> tuple[str, str, str | None, dict[str, str]]:
    """What a `docker build` builds: (component, Dockerfile, --target, --build-args)."""
    opts: dict[str, list[str]] = {}
    for flag, value in itertools.pairwise(command):
        if flag in {"-f", "-t", "--target", "--build-arg"}:
            opts.setdefault(flag, []).append(value)
    assert command[-1] == "." and len(opts["-f"]) == len(opts["-t"]) == 1, command
    component = opts["-t"][0].split(":")[0].removeprefix("pagestream-")
    args = dict(a.split("=", 1) for a in opts.get("--build-arg", []))
    return component, opts["-f"][0], (opts.get("--target") or [None])[0], args


def test_every_file_named_exists() -> None:
    for command in COMMANDS:
        for i, arg in enumerate(command):
            path = arg.split("=", 1)[-1]
            if re.match(r"^(charts|manifests|images)/", path) or (
                i > 0 and command[i - 1] in {"-f", "--config"}
            ):
                assert (REPO_ROOT / path).exists(), f"{shlex.join(command)}: {path} is missing"


def flags(command: list[str]) -> list[str]:
    return [a.split("=", 1)[0] for a in command if a.startswith("-")]


# Flags of these commands that take a value (the next word is not a positional argument).
VALUE_FLAGS = {"-n", "--namespace", "-f", "--context", "--timeout", "--set", "-o", "--for"}


def subcommand(command: list[str], depth: int) -> list[str]:
    words, skip = [], False
    for arg in command[1:]:
        if skip:
            skip = False
        elif arg.startswith("-"):
            skip = arg in VALUE_FLAGS
        else:
            words.append(arg)
    return words[:depth]


@pytest.mark.parametrize(
    "command",
    [c for c in COMMANDS if c[0] in {"helm", "kubectl"}],
    ids=lambda c: " ".join(c[:3]),
)
def test_helm_and_kubectl_accept_the_command(helm: Helm, command: list[str]) -> None:
    tool = command[0]
    first = subcommand(command, 1)[0]
    depth = {"repo": 2, "dependency": 2, "rollout": 2, "create": 3}.get(first, 1)
    sub = subcommand(command, depth)
    if tool == "helm":
        proc = helm.run(*sub, "--help", check=False)
    else:
        proc = subprocess.run(
            ["kubectl", *sub, "--help"],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "KUBECONFIG": os.devnull},
        )
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert sub and "Usage:" in text
    if tool == "kubectl":
        # kubectl's global flags (-n, --context) are listed by `kubectl options`.
        text += subprocess.run(
            ["kubectl", "options"], capture_output=True, text=True, check=True
        ).stdout
    for flag in flags(command):
        if flag.startswith("--"):
            assert re.search(rf"(^|\s|,){re.escape(flag)}[\s=\[]", text, re.M), (
                f"{tool} {' '.join(sub)} has no flag {flag}"
            )
        else:
            short = flag[:2]
            assert re.search(rf"(^|\s){re.escape(short)},", text, re.M), (
                f"{tool} {' '.join(sub)} has no flag {short}"
            )


# kind and skaffold are not installed where the tests run; their commands are checked against
# the source of the pinned releases (Go modules, fetched with `go mod download`).
KIND = ("sigs.k8s.io/kind", "v0.30.0")
SKAFFOLD = ("github.com/GoogleContainerTools/skaffold/v2", "v2.16.1")


def go_module(module: str, version: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return go_module_dir(module, version, tmp_path_factory.mktemp("gomod"))


@pytest.fixture(scope="module")
def kind_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return go_module(*KIND, tmp_path_factory)


@pytest.fixture(scope="module")
def skaffold_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return go_module(*SKAFFOLD, tmp_path_factory)


def test_kind_commands_exist(kind_source: Path) -> None:
    kind_commands = [c for c in COMMANDS if c[0] == "kind"]
    assert kind_commands
    for command in kind_commands:
        words = subcommand(command, 2)
        folder = kind_source / "pkg/cmd/kind" / words[0] / words[1]
        assert folder.is_dir(), f"kind {' '.join(words)} does not exist"
        code = "".join(
            p.read_text() for p in folder.glob("*.go") if not p.name.endswith("_test.go")
        )
        for flag in flags(command):
            assert f'"{flag.lstrip("-")}"' in code, f"kind {' '.join(words)} has no flag {flag}"


def test_kind_config_uses_kinds_fields_and_node_image(kind_source: Path) -> None:
    types = (kind_source / "pkg/apis/config/v1alpha4/types.go").read_text()
    tags = set(re.findall(r'yaml:"(\w+)', types))
    config = yaml.safe_load((REPO_ROOT / "manifests/kind-cluster.yaml").read_text())
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4" and config["kind"] == "Cluster"

    def keys(node: object) -> set[str]:
        if isinstance(node, dict):
            return set(node) | {k for v in node.values() for k in keys(v)}
        if isinstance(node, list):
            return {k for v in node for k in keys(v)}
        return set()

    assert keys(config) - {"apiVersion", "kind"} <= tags
    default = re.search(
        r'const Image = "([^"]+)"', (kind_source / "pkg/apis/config/defaults/image.go").read_text()
    )
    assert default
    assert {n["image"] for n in config["nodes"]} == {default.group(1)}


def test_skaffold_commands_exist(skaffold_source: Path) -> None:
    skaffold_commands = [c for c in COMMANDS if c[0] == "skaffold"]
    assert skaffold_commands
    flag_defs = (skaffold_source / "cmd/skaffold/app/cmd/flags.go").read_text()
    for command in skaffold_commands:
        (verb,) = subcommand(command, 1)
        assert (skaffold_source / f"cmd/skaffold/app/cmd/{verb}.go").is_file()
        for flag in flags(command):
            name = flag.lstrip("-")
            key = "Shorthand" if len(name) == 1 else "Name"
            m = re.search(
                rf'{key}:\s+"{re.escape(name)}",.*?DefinedOn:\s+\[\]string\{{([^}}]*)\}}',
                flag_defs,
                re.S,
            )
            assert m and f'"{verb}"' in m.group(1), f"skaffold {verb} has no flag {flag}"
