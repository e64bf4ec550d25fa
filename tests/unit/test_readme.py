"""The README's promises: exactly two set-up commands (`make run`, `make test`, the latter being
what CI runs), every `make` target and `pagestream` command it shows exists and parses as
written, every path it links or names exists, and its benchmark table is the one the results
generate."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest

from pagestream.cli import build_parser
from pagestream.stack.paths import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()
FENCE = re.compile(r"```(\w*)\n(.*?)```", re.S)


def _section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, re.S | re.M)
    assert match, f"README has no section {title!r}"
    return match.group(1)


def _commands(text: str) -> list[str]:
    """Shell commands in the text's bash blocks, comments stripped."""
    out = []
    for lang, body in FENCE.findall(text):
        if lang != "bash":
            continue
        for line in body.splitlines():
            command = line.split(" #", 1)[0].strip()
            if command and not command.startswith("#"):
                out.append(command)
    return out


def test_exactly_two_setup_commands_run_and_test() -> None:
    assert _commands(_section("The two commands")) == ["make run", "make test"]


def test_ci_runs_the_readme_test_command() -> None:
    lines = [
        line.strip()
        for line in (REPO_ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not re.match(r"(#|set |cd |export )", line.strip())
    ]
    assert lines[-1] == "make test"


def _make_targets() -> set[str]:
    return set(re.findall(r"^([a-zA-Z_-]+):", (REPO_ROOT / "Makefile").read_text(), re.M))


def test_every_make_target_mentioned_exists() -> None:
    mentioned = set(re.findall(r"`make ([a-z-]+)`", README)) | {
        c.split()[1] for c in _commands(README) if c.startswith("make ")
    }
    assert mentioned, "the README mentions no make target"
    assert mentioned <= _make_targets(), mentioned - _make_targets()


def _pagestream_invocations() -> list[list[str]]:
    """Every `pagestream ...` the README shows, in code blocks or inline, as argv."""
    found = []
    texts = [c for c in _commands(README)] + re.findall(r"`([^`\n]*pagestream [^`\n]*)`", README)
    for text in texts:
        text = text.replace('eval "$(', "").rstrip(')"')
        match = re.search(r"(?:^|uv run )pagestream (.*)", text)
        if match and "..." not in match.group(1):
            found.append(shlex.split(match.group(1)))
    return found


INVOCATIONS = _pagestream_invocations()


def test_the_readme_shows_the_embedded_commands() -> None:
    shown = {argv[0] for argv in INVOCATIONS}
    assert {"up", "down", "status", "report", "snapshot", "stack", "simulate"} <= shown


@pytest.mark.parametrize("argv", INVOCATIONS, ids=[" ".join(a) for a in INVOCATIONS])
def test_every_pagestream_command_parses_as_written(argv: list[str]) -> None:
    if argv[0] == "simulate":  # handed whole to the simulator's own parser
        from pagestream_simulator.cli import build_parser as simulator_parser

        simulator_parser().parse_args(argv[1:] if argv[1:] != ["--help"] else [])
        return
    build_parser().parse_args(argv)


@pytest.mark.parametrize(
    "command", sorted({tuple(a[: 2 if a[0] == "stack" else 1]) for a in INVOCATIONS})
)
def test_help_works(command: tuple[str, ...]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pagestream", *command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout


def _linked_paths() -> set[str]:
    links = {
        target.split("#", 1)[0]
        for target in re.findall(r"\]\(([^)]+)\)", README)
        if not re.match(r"[a-z]+://", target)
    }
    named = {
        p
        for p in re.findall(r"`([a-zA-Z_.][\w./-]*/[\w./-]*)`", README)
        if p.split("/", 1)[0]
        in {
            "bench",
            "charts",
            "cli",
            "docs",
            "images",
            "libs",
            "manifests",
            "operator",
            "tests",
            "tools",
            "dev",
            "simulator",
            "spark-apps",
        }
        and "<" not in p
        and "*" not in p
    }
    return {p for p in links | named if p}


def test_every_linked_or_named_path_exists() -> None:
    paths = _linked_paths()
    assert "docs/kubernetes.md" in paths and "docs/crd-reference.md" in paths
    missing = sorted(p for p in paths if not (REPO_ROOT / p).exists())
    assert missing == []


def test_the_architecture_diagram_is_mermaid() -> None:
    assert "mermaid" in {lang for lang, _ in FENCE.findall(README)}


def test_benchmark_table_is_generated_from_the_results() -> None:
    sys.path.insert(0, str(REPO_ROOT / "bench"))
    try:
        import report
    finally:
        sys.path.remove(str(REPO_ROOT / "bench"))
    expected = report.replace_block(README, report.table(report.published_results()))
    assert README == expected, "run `uv run python bench/report.py --write README.md`"
