"""Print the values table of README.md from values.yaml's `# --` comments (the helm-docs
convention). `python charts/pagestream/hack/values_table.py` rewrites the table in README.md;
tests/unit/chart/test_chart_readme.py checks that it is up to date."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

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


def default(values: dict, key: str) -> str:
    node = values
    for part in key.split("."):
        node = node[part]
    return json.dumps(node)


def table() -> str:
    text = (CHART / "values.yaml").read_text()
    values = yaml.safe_load(text)
    rows = ["| key | default | description |", "|---|---|---|"]
    for key, desc in documented(text):
        rows.append(f"| `{key}` | `{default(values, key)}` | {desc} |")
    return "\n".join(rows)


def main() -> int:
    readme = CHART / "README.md"
    text = readme.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{BEGIN}\n{table()}\n{END}{tail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
