"""The operator's pipeline metrics: one series per pipeline naming it (namespace, pipeline,
state, reason), replaced when the state or reason changes and removed with the pipeline, next
to the counts per lifecycle state. On gauges of a registry of the test's own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pagestream_operator.metrics import PIPELINE_STATE, PIPELINES, PipelineState, PipelineStates
from pagestream_operator.observe import LifecycleState

L = LifecycleState


def new_states() -> tuple[PipelineStates, CollectorRegistry]:
    registry = CollectorRegistry()
    counts = Gauge(
        "pagestream_operator_pipelines", "counts", ["lifecycle_state"], registry=registry
    )
    per_pipeline = Gauge(
        "pagestream_operator_pipeline_state",
        "per pipeline",
        ["namespace", "pipeline", "state", "reason"],
        registry=registry,
    )
    return PipelineStates(counts, per_pipeline), registry


def samples(registry: CollectorRegistry, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The exposition as Prometheus would scrape it: labels (sorted) -> value."""
    text = generate_latest(registry).decode()
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


def per_pipeline(registry: CollectorRegistry) -> set[tuple[str, str, str, str]]:
    out = set()
    for labels, value in samples(registry, "pagestream_operator_pipeline_state").items():
        assert value == 1
        d = dict(labels)
        out.add((d["namespace"], d["pipeline"], d["state"], d["reason"]))
    return out


def counts(registry: CollectorRegistry) -> dict[str, float]:
    return {
        dict(labels)["lifecycle_state"]: value
        for labels, value in samples(registry, "pagestream_operator_pipelines").items()
    }


def test_every_state_has_a_count_from_the_start_and_no_pipeline_a_series() -> None:
    _, registry = new_states()
    assert counts(registry) == {s.value: 0 for s in L}
    assert per_pipeline(registry) == set()


def test_one_series_per_pipeline_follows_its_state_and_reason() -> None:
    states, registry = new_states()
    states.set("shop", "views", L.DEPLOYING, "Deploying")
    states.set("shop", "views", L.RUNNING, "Running")
    # The same name in another namespace is another pipeline.
    states.set("blog", "views", L.FAILED, "SparkApplicationFailed")
    assert per_pipeline(registry) == {
        ("shop", "views", "RUNNING", "Running"),
        ("blog", "views", "FAILED", "SparkApplicationFailed"),
    }
    assert counts(registry) == {**{s.value: 0 for s in L}, "RUNNING": 1, "FAILED": 1}

    # The reason alone changing replaces the series too: never two for one pipeline.
    states.set("shop", "views", L.RUNNING, "InvalidSpec")
    assert per_pipeline(registry) == {
        ("shop", "views", "RUNNING", "InvalidSpec"),
        ("blog", "views", "FAILED", "SparkApplicationFailed"),
    }
    assert states.get("shop", "views") == PipelineState(L.RUNNING, "InvalidSpec")

    # A repeated pass with the same result changes nothing.
    states.set("shop", "views", L.RUNNING, "InvalidSpec")
    assert len(per_pipeline(registry)) == 2


def test_a_forgotten_pipeline_leaves_no_series() -> None:
    states, registry = new_states()
    states.set("shop", "views", L.FAILED, "SubmissionFailed")
    states.set("shop", "other", L.RUNNING, "Running")
    states.forget("shop", "views")
    assert per_pipeline(registry) == {("shop", "other", "RUNNING", "Running")}
    assert counts(registry)["FAILED"] == 0
    assert states.get("shop", "views") is None
    # Forgetting twice, or a pipeline never seen, is harmless.
    states.forget("shop", "views")
    states.forget("elsewhere", "never")
    assert per_pipeline(registry) == {("shop", "other", "RUNNING", "Running")}


def test_the_operator_gauges_have_the_documented_names_and_labels() -> None:
    assert PIPELINES._name == "pagestream_operator_pipelines"
    assert PIPELINES._labelnames == ("lifecycle_state",)
    assert PIPELINE_STATE._name == "pagestream_operator_pipeline_state"
    # The labels the job's metrics carry (namespace from the scrape, pipeline from the job),
    # so alerts join the two on (namespace, pipeline).
    assert PIPELINE_STATE._labelnames == ("namespace", "pipeline", "state", "reason")
