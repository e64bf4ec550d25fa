"""The operator's own Prometheus metrics."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram

from pagestream_operator.observe import LifecycleState

RECONCILES = Counter(
    "pagestream_operator_reconciles_total",
    "Reconcile passes, by result (ok, invalid, error, paused, skipped) and trigger.",
    ["result", "trigger"],
)
RECONCILE_DURATION = Histogram(
    "pagestream_operator_reconcile_duration_seconds",
    "Duration of one reconcile pass.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ERRORS = Counter(
    "pagestream_operator_errors_total",
    "Errors while reconciling, by kind (api, unexpected).",
    ["kind"],
)
PIPELINES = Gauge(
    "pagestream_operator_pipelines",
    "Pipelines this operator reconciles, by lifecycle state.",
    ["lifecycle_state"],
)
PIPELINE_STATE = Gauge(
    "pagestream_operator_pipeline_state",
    "One series per pipeline this operator reconciles, always 1: its namespace and name, its "
    "lifecycle state and the reason of its Ready condition. The series changes labels when the "
    "state or reason does and goes away with the pipeline.",
    ["namespace", "pipeline", "state", "reason"],
)


@dataclass(frozen=True)
class PipelineState:
    lifecycle_state: LifecycleState
    reason: str


class PipelineStates:
    """Last known lifecycle state per pipeline, exported twice: as one series per pipeline
    (``pagestream_operator_pipeline_state``, as Strimzi's ``strimzi_resource_state``: alerts
    name the pipeline from its labels) and as counts per state (``pagestream_operator_pipelines``;
    every state always has a series, 0 when none, so a dashboard never sees a state vanish).

    The gauges are parameters so tests can pass ones of their own registry."""

    def __init__(self, counts: Gauge = PIPELINES, per_pipeline: Gauge = PIPELINE_STATE) -> None:
        self._counts = counts
        self._per_pipeline = per_pipeline
        self._lock = threading.Lock()
        self._states: dict[tuple[str, str], PipelineState] = {}
        self._export_counts()

    def set(self, namespace: str, name: str, state: LifecycleState, reason: str = "") -> None:
        new = PipelineState(state, reason)
        with self._lock:
            old = self._states.get((namespace, name))
            if old is not None and old != new:
                self._remove(namespace, name, old)
            self._per_pipeline.labels(namespace, name, state.value, reason).set(1)
            self._states[(namespace, name)] = new
            self._export_counts()

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            old = self._states.pop((namespace, name), None)
            if old is not None:
                self._remove(namespace, name, old)
            self._export_counts()

    def get(self, namespace: str, name: str) -> PipelineState | None:
        with self._lock:
            return self._states.get((namespace, name))

    def _remove(self, namespace: str, name: str, old: PipelineState) -> None:
        self._per_pipeline.remove(namespace, name, old.lifecycle_state.value, old.reason)

    def _export_counts(self) -> None:
        counts = dict.fromkeys(LifecycleState, 0)
        for state in self._states.values():
            counts[state.lifecycle_state] += 1
        for lifecycle_state, count in counts.items():
            self._counts.labels(lifecycle_state=lifecycle_state.value).set(count)
