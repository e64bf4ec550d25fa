"""Print the values table of README.md from values.yaml and its `# --` comments (the helm-docs
convention). `python charts/pagestream/hack/values_table.py` rewrites the table in README.md;
`--check` only says whether it is up to date (exit status 1 if not), as
tests/unit/chart/test_chart_readme.py does.

Every leaf value (a scalar, a list, or an empty map) is a row, with its default; a map with a
`# --` comment of its own is a row too (no default: its leaves follow it), so a group of values
is described once, above its members."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- values:begin -->", "<!-- values:end -->"


def documented(values_text: str) -> list[tuple[str, str]]:
    """(dotted key, description) for every key preceded by a `# --` comment."""
    path: list[tuple[int, str]] = []
    pending: list[str] | None = None
    out = []
    for line in values_text.splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if stripped.startswith("# --"):
            pending = [stripped[4:].strip()]
            continue
        if stripped.startswith("#"):
            if pending is not None:
                pending.append(stripped[1:].strip())
            continue
        m = re.match(r"^(\s*)([A-Za-z_][\w-]*):", line)
        if not m or stripped.startswith("-"):
            pending = None if not stripped else pending
            continue
        while path and path[-1][0] >= indent:
            path.pop()
        path.append((indent, m.group(2)))
        if pending is not None:
            out.append((".".join(p for _, p in path), " ".join(pending)))
            pending = None
    return out


def is_leaf(node: Any) -> bool:
    return not isinstance(node, dict) or not node


def rows(values: dict[str, Any], descriptions: dict[str, str]) -> Iterator[tuple[str, str, str]]:
    """(key, default, description) in the order of values.yaml; default is "" for a group."""

    def walk(node: dict[str, Any], prefix: str) -> Iterator[tuple[str, str, str]]:
        for name, value in node.items():
            key = f"{prefix}{name}"
            if is_leaf(value):
                yield key, f"`{json.dumps(value)}`", descriptions.get(key, "")
                continue
            if key in descriptions:
                yield key, "", descriptions[key]
            yield from walk(value, f"{key}.")

    yield from walk(values, "")


def table() -> str:
    text = (CHART / "values.yaml").read_text()
    values = yaml.safe_load(text)
    out = ["| key | default | description |", "|---|---|---|"]
    for key, default, desc in rows(values, dict(documented(text))):
        out.append(f"| `{key}` | {default} | {desc} |")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    readme = CHART / "README.md"
    text = readme.read_text()
    head, rest = text.split(BEGIN, 1)
    current, tail = rest.split(END, 1)
    if argv == ["--check"]:
        if current.strip() == table():
            return 0
        print(f"{readme}: the values table is stale; run: python3 {Path(__file__)}")
        return 1
    if argv:
        print(f"usage: {Path(__file__).name} [--check]", file=sys.stderr)
        return 2
    readme.write_text(f"{head}{BEGIN}\n{table()}\n{END}{tail}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
