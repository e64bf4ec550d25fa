"""The chart README's values table is what charts/pagestream/hack/values_table.py generates
from values.yaml's `# --` comments, so it never drifts from the values; and it lists every leaf
value of values.yaml, with its default, each described by its own comment or its group's."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[3] / "charts" / "pagestream"


def load_generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("values_table", CHART / "hack/values_table.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    """Every leaf of values.yaml by dotted key: scalars, lists and empty maps (written out here,
    not taken from the generator, so a leaf the generator skips is caught)."""
    if isinstance(node, dict) and node:
        out: dict[str, Any] = {}
        for key, value in node.items():
            out |= leaves(value, f"{prefix}{key}.")
        return out
    return {prefix.rstrip("."): node}


def readme_rows() -> dict[str, tuple[str, str]]:
    """key -> (default cell, description) of the README's values table."""
    gen = load_generator()
    text = (CHART / "README.md").read_text().split(gen.BEGIN, 1)[1].split(gen.END, 1)[0]
    rows: dict[str, tuple[str, str]] = {}
    for line in text.strip().splitlines()[2:]:
        key, default, description = (c.strip() for c in line.strip("|").split(" | ", 2))
        assert key.startswith("`") and key.endswith("`"), line
        assert key[1:-1] not in rows, f"{key} twice"
        rows[key[1:-1]] = (default, description.strip())
    return rows


def test_values_table_is_up_to_date() -> None:
    gen = load_generator()
    readme = (CHART / "README.md").read_text()
    current = readme.split(gen.BEGIN, 1)[1].split(gen.END, 1)[0].strip()
    assert current == gen.table(), "run: python3 charts/pagestream/hack/values_table.py"
    assert gen.main(["--check"]) == 0


def test_check_mode_fails_on_a_stale_table(tmp_path: Path, monkeypatch: Any) -> None:
    gen = load_generator()
    copy = tmp_path / "pagestream"
    shutil.copytree(CHART, copy, ignore=shutil.ignore_patterns("dashboards", "crds"))
    monkeypatch.setattr(gen, "CHART", copy)
    values = copy / "values.yaml"
    values.write_text(values.read_text().replace("  workers: 8\n", "  workers: 9\n"))
    assert gen.main(["--check"]) == 1
    assert gen.main([]) == 0  # rewrites the table
    assert gen.main(["--check"]) == 0
    assert "| `operator.workers` | `9` |" in (copy / "README.md").read_text()


def test_every_leaf_value_is_in_the_table_with_its_default() -> None:
    values = leaves(yaml.safe_load((CHART / "values.yaml").read_text()))
    rows = readme_rows()
    missing = sorted(set(values) - set(rows))
    assert not missing, f"values.yaml leaves missing from the README table: {missing}"
    for key, value in values.items():
        assert rows[key][0] == f"`{json.dumps(value)}`", key
    # The other rows are the documented groups of values, and have no default of their own.
    for key in set(rows) - set(values):
        assert rows[key][0] == "" and rows[key][1], key
    assert len(values) > 120


def test_every_leaf_is_described_by_itself_or_its_group() -> None:
    rows = readme_rows()
    undescribed = []
    for key in leaves(yaml.safe_load((CHART / "values.yaml").read_text())):
        parts = key.split(".")
        scopes = [".".join(parts[:i]) for i in range(len(parts), 0, -1)]
        if not any(rows.get(scope, ("", ""))[1] for scope in scopes):
            undescribed.append(key)
    assert undescribed == [], "give these a `# --` comment (or their group one)"


def test_every_top_level_value_is_documented() -> None:
    gen = load_generator()
    keys = {key for key, _ in gen.documented((CHART / "values.yaml").read_text())}
    tops = {k.split(".")[0] for k in keys}
    assert tops == {
        "nameOverride",
        "fullnameOverride",
        "operator",
        "rbac",
        "monitoring",
        "dataPlane",
        "kafka",
        "postgres",
        "examplePipeline",
        "strimzi",
        "cloudnativepg",
        "sparkOperator",
        "sparkSubmitAccess",
        "kubePrometheusStack",
    }
