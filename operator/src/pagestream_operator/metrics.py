"""The operator's own Prometheus metrics."""

from __future__ import annotations

import threading

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


class PipelineStates:
    """Last known lifecycle state per pipeline, exported as counts. Every state always has a
    series (0 when none), so a dashboard never sees a state vanish."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[tuple[str, str], LifecycleState] = {}
        self._export()

    def set(self, namespace: str, name: str, state: LifecycleState) -> None:
        with self._lock:
            self._states[(namespace, name)] = state
            self._export()

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._states.pop((namespace, name), None)
            self._export()

    def _export(self) -> None:
        counts = dict.fromkeys(LifecycleState, 0)
        for state in self._states.values():
            counts[state] += 1
        for state, count in counts.items():
            PIPELINES.labels(lifecycle_state=state.value).set(count)
