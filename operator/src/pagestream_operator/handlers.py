"""Thin kopf handlers: each one finds the pipeline concerned and runs one reconcile pass.

- create / update / resume: the pipeline changed, or the operator (re)started;
- a timer per pipeline: level-based resync, so a missed event or a hand-edited child never
  stays wrong for longer than ``resync_seconds``;
- SparkApplication events: the Spark operator changed the application's status (or someone
  deleted it), so the owning pipeline's status follows at once rather than at the next resync.

Passes for one pipeline never overlap: a lock per pipeline serialises handlers that kopf runs
for different objects (the pipeline's own handlers and its SparkApplication's).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from pagestream_operator.apply import KubeApi
from pagestream_operator.metrics import ERRORS, RECONCILE_DURATION, RECONCILES, PipelineStates
from pagestream_operator.reconcile import EmitFn, NamespaceTerminating, ReconcileError, reconcile
from pagestream_operator.render import PIPELINE_LABEL
from pagestream_operator.settings import OperatorSettings
from pagestream_operator.spec import API_GROUP, API_VERSION, KIND, PLURAL

log = logging.getLogger(__name__)


class Reconciler:
    def __init__(self, api: KubeApi) -> None:
        self.api = api
        self.states = PipelineStates()
        self._locks: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)
        self._locks_guard = threading.Lock()
        # (namespace, pipeline) -> resourceVersion of its SparkApplication after our last pass.
        self._app_versions: dict[tuple[str, str], str | None] = {}

    def is_own_write(self, namespace: str, pipeline: str, resource_version: str | None) -> bool:
        """A SparkApplication event that only echoes what the last pass applied."""
        return resource_version is not None and (
            self._app_versions.get((namespace, pipeline)) == resource_version
        )

    def forget(self, namespace: str, name: str) -> None:
        self.states.forget(namespace, name)
        self._app_versions.pop((namespace, name), None)
        with self._locks_guard:
            self._locks.pop((namespace, name), None)

    def _lock(self, namespace: str, name: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks[(namespace, name)]

    def run(self, body: kopf.Body | dict[str, Any], trigger: str, *, fresh: bool = False) -> None:
        """One pass for ``body``'s pipeline. ``fresh`` re-reads the pipeline first (kopf's body
        may be older than a pass that just finished under the lock)."""
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        with self._lock(namespace, name):
            started = time.perf_counter()
            try:
                pipeline = self.api.get_pipeline(namespace, name)
                if pipeline is None:
                    # Deleted meanwhile (its children go with it), maybe while the operator
                    # missed the deletion: its metrics go too.
                    self.states.forget(namespace, name)
                    return
                outcome = reconcile(self.api, pipeline, _emitter(pipeline))
            except NamespaceTerminating:
                # Everything in the namespace is going away, the pipeline included.
                RECONCILES.labels(result="skipped", trigger=trigger).inc()
                return
            except ReconcileError as exc:
                RECONCILES.labels(result="error", trigger=trigger).inc()
                ERRORS.labels(kind="api").inc()
                # Status was written before the failure (Ready False, reason ApplyFailed).
                if exc.outcome is not None and exc.outcome.lifecycle_state is not None:
                    self.states.set(
                        namespace, name, exc.outcome.lifecycle_state, exc.outcome.reason or ""
                    )
                raise kopf.TemporaryError(str(exc), delay=5) from exc
            except ApiException as exc:
                RECONCILES.labels(result="error", trigger=trigger).inc()
                ERRORS.labels(kind="api").inc()
                # 409/429/5xx and network trouble: try again soon; the next pass starts over.
                raise kopf.TemporaryError(f"API error {exc.status}: {exc.reason}", delay=2) from exc
            except Exception:
                RECONCILES.labels(result="error", trigger=trigger).inc()
                ERRORS.labels(kind="unexpected").inc()
                raise
            finally:
                RECONCILE_DURATION.observe(time.perf_counter() - started)
            RECONCILES.labels(result=outcome.result, trigger=trigger).inc()
            self._app_versions[(namespace, name)] = outcome.app_resource_version
            if outcome.lifecycle_state is not None:
                self.states.set(namespace, name, outcome.lifecycle_state, outcome.reason or "")
            if outcome.created or outcome.updated or outcome.deleted:
                log.info(
                    "reconciled %s/%s",
                    namespace,
                    name,
                    extra={
                        "trigger": trigger,
                        "children_created": outcome.created,
                        "children_updated": outcome.updated,
                        "children_deleted": outcome.deleted,
                        "lifecycle_state": outcome.lifecycle_state,
                    },
                )


def _emitter(pipeline: dict[str, Any]) -> EmitFn:
    def emit(kind: str, reason: str, message: str) -> None:
        # kopf annotates objs as kopf.Body (its handlers' wrapper), but builds the event's
        # object reference with Mapping.get alone; this is the plain object the API returned.
        kopf.event(pipeline, type=kind, reason=reason, message=message[:1000])  # type: ignore[arg-type]

    return emit


def register(settings: OperatorSettings, api: KubeApi) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    reconciler = Reconciler(api)
    resource = (API_GROUP, API_VERSION, PLURAL)
    workers = settings.workers

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.reporting_component = "pagestream-operator"
        settings.execution.max_workers = workers
        # Pipelines carry kopf's progress in annotations (the CRD prunes unknown status
        # fields), and the last-handled spec for update detection.
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
            prefix="pagestream.dev"
        )
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix="pagestream.dev", key="last-handled-configuration"
        )
        settings.watching.server_timeout = 300
        settings.networking.request_timeout = 60

    @kopf.on.resume(*resource, registry=registry)
    @kopf.on.create(*resource, registry=registry)
    @kopf.on.update(*resource, registry=registry)
    def on_pipeline_change(body: kopf.Body, reason: str, **_: Any) -> None:
        reconciler.run(body, trigger=str(reason))

    @kopf.timer(
        *resource,
        interval=settings.resync_seconds,
        initial_delay=settings.resync_seconds,
        registry=registry,
    )
    def on_resync(body: kopf.Body, **_: Any) -> None:
        reconciler.run(body, trigger="resync")

    @kopf.on.event(
        "sparkoperator.k8s.io",
        "v1beta2",
        "sparkapplications",
        labels={PIPELINE_LABEL: kopf.PRESENT},
        registry=registry,
    )
    def on_spark_application_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        if event.get("type") is None:  # the initial listing: resume handlers cover it
            return
        owner = next(
            (
                ref
                for ref in body.get("metadata", {}).get("ownerReferences", [])
                if ref.get("kind") == KIND and ref.get("apiVersion", "").startswith(API_GROUP)
            ),
            None,
        )
        if owner is None:
            return
        namespace = body["metadata"]["namespace"]
        version = body["metadata"].get("resourceVersion")
        if event.get("type") != "DELETED" and reconciler.is_own_write(
            namespace, owner["name"], version
        ):
            return
        pipeline = {"metadata": {"namespace": namespace, "name": owner["name"]}}
        try:
            reconciler.run(pipeline, trigger="child")
        except kopf.TemporaryError as exc:
            # Event handlers are not retried; the pipeline's timer will be.
            log.warning("child-triggered reconcile failed: %s", exc)

    @kopf.on.delete(*resource, optional=True, registry=registry)
    def on_pipeline_deleted(body: kopf.Body, **_: Any) -> None:
        # No finalizer: the garbage collector deletes the children through their owner
        # references. This only forgets the pipeline in the metrics.
        reconciler.forget(body["metadata"]["namespace"], body["metadata"]["name"])

    return registry
