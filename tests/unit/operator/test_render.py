"""Properties of the rendered children that golden files alone would not make obvious."""

from __future__ import annotations

from pathlib import Path

import pytest
from operator_cases import CASES, case, load_case

from pagestream_common.jobconfig import SECRET_ENV, JobConfig
from pagestream_operator.render import (
    JOB_MAIN_FILE,
    RenderInput,
    checkpoint_location,
    render_children,
    render_spark_application,
)

SECRET_VARS = set(SECRET_ENV.values()) - {SECRET_ENV["kafka_sasl_username"]}


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_the_job_parses_the_arguments_it_is_given(case: Path) -> None:
    inp = load_case(case)
    app = render_spark_application(inp)
    config = JobConfig.from_args(app["spec"]["arguments"])
    assert config.pipeline_name == inp.name
    assert config.checkpoint_location == checkpoint_location(inp)
    assert config.trigger_mode == "processing-time"
    assert app["spec"]["mainApplicationFile"] == JOB_MAIN_FILE


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_secrets_only_come_from_secret_references(case: Path) -> None:
    app = render_spark_application(load_case(case))
    env = app["spec"]["driver"]["env"]
    for var in env:
        if var["name"] in SECRET_VARS:
            assert set(var) == {"name", "valueFrom"}, var
            assert set(var["valueFrom"]) == {"secretKeyRef"}, var
    assert not any("password" in a.lower() for a in app["spec"]["arguments"])


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_every_child_is_labelled_and_namespaced(case: Path) -> None:
    inp = load_case(case)
    for child in render_children(inp):
        meta = child["metadata"]
        assert meta["namespace"] == inp.namespace
        assert meta["labels"]["pagestream.dev/pipeline"] == inp.name
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "pagestream-operator"
        assert "ownerReferences" not in meta  # apply adds them


def test_suspended_maps_to_spark_suspend() -> None:
    inp = case("suspended-servicemonitor")
    assert render_spark_application(inp)["spec"]["suspend"] is True


def test_a_new_epoch_is_a_new_checkpoint_folder() -> None:
    inp = case("minimal")
    later = RenderInput(inp.name, inp.namespace, inp.spec, checkpoint_epoch=9)
    assert checkpoint_location(inp) != checkpoint_location(later)
    assert checkpoint_location(later).endswith("/analytics/shop/epoch-9")
