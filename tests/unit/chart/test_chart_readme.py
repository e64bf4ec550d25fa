"""The chart README's values table is what charts/pagestream/hack/values_table.py generates
from values.yaml's `# --` comments, so it never drifts from the values."""

from __future__ import annotations

import importlib.util
from pathlib import Path

CHART = Path(__file__).resolve().parents[3] / "charts" / "pagestream"


def load_generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("values_table", CHART / "hack/values_table.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_values_table_is_up_to_date() -> None:
    gen = load_generator()
    readme = (CHART / "README.md").read_text()
    current = readme.split(gen.BEGIN, 1)[1].split(gen.END, 1)[0].strip()
    assert current == gen.table(), "run: python charts/pagestream/hack/values_table.py"


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
        "kafka",
        "postgres",
        "examplePipeline",
        "strimzi",
        "cloudnativepg",
        "sparkOperator",
        "sparkSubmitAccess",
        "kubePrometheusStack",
    }
