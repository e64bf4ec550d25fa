"""Applying the chart's data plane (see :mod:`.data_plane`): one pass reads the ConfigMap,
applies each object whose kind is served, deletes the objects it no longer lists, and writes
what happened into the ConfigMap's status annotation; a thread repeats the pass, often while
something waits and seldom once all is applied (a hand-deleted object comes back then)."""

from __future__ import annotations

import json
import logging
import threading

from kubernetes.client.exceptions import ApiException

from pagestream_operator.apply import ChildRef, KubeApi
from pagestream_operator.data_plane import (
    DATA_PLANE_KINDS,
    DATA_PLANE_LABEL,
    OBJECTS_KEY,
    STATUS_ANNOTATION,
    DataPlaneError,
    DataPlaneObject,
    ObjectOutcome,
    ObjectState,
    desired,
    parse_objects,
    settled,
    stale,
    status_text,
    waiting_for_crd,
)

log = logging.getLogger(__name__)

# Seconds between passes while an object waits for its CRD or was refused (at most).
PENDING_INTERVAL = 10.0


def _refusal(exc: ApiException) -> str:
    """The API server's message (a webhook that does not answer yet, a rejected field)."""
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except ValueError:
        return f"{exc.status} {exc.reason}"


class DataPlaneLoop:
    def __init__(
        self, api: KubeApi, namespace: str, configmap: str, *, resync_seconds: float = 60.0
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.configmap = configmap
        self.settled_interval = resync_seconds
        self.pending_interval = min(PENDING_INTERVAL, resync_seconds)
        self._last_status: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def pass_once(self) -> list[ObjectOutcome]:
        """One pass; returns each listed object's outcome (empty when the ConfigMap is gone or
        cannot be read as objects, which the status annotation then says)."""
        owner = self.api.get("v1", "ConfigMap", self.namespace, self.configmap)
        if owner is None:
            log.info("no data plane ConfigMap", extra={"configmap": self.configmap})
            return []
        try:
            objects = parse_objects((owner.get("data") or {}).get(OBJECTS_KEY, ""))
        except DataPlaneError as exc:
            self._write_status([], str(exc))
            log.error("data plane ConfigMap unusable: %s", exc)
            return []
        outcomes: list[ObjectOutcome] = []
        for obj in objects:
            if not self.api.serves(obj.api_version, obj.kind, max_age=self.pending_interval):
                outcomes.append(waiting_for_crd(obj))
                continue
            try:
                self.api.apply(desired(obj, self.namespace, owner))
            except ApiException as exc:
                outcomes.append(ObjectOutcome(str(obj), ObjectState.FAILED, _refusal(exc)))
                continue
            outcomes.append(ObjectOutcome(str(obj), ObjectState.APPLIED))
        self._prune(objects)
        self._write_status(outcomes)
        return outcomes

    def _prune(self, wanted: list[DataPlaneObject]) -> None:
        selector = f"{DATA_PLANE_LABEL}={self.configmap}"
        for api_version, kind, _ in DATA_PLANE_KINDS:
            if not self.api.serves(api_version, kind, max_age=self.pending_interval):
                continue
            names = self.api.names_labelled(api_version, kind, self.namespace, selector)
            for _kind, name in stale([(kind, n) for n in names], wanted):
                log.info(
                    "deleting a data plane object no longer listed",
                    extra={"object": f"{kind}/{name}"},
                )
                self.api.delete(ChildRef(api_version, kind, name), self.namespace)

    def _write_status(self, outcomes: list[ObjectOutcome], error: str | None = None) -> None:
        text = status_text(outcomes, error)
        if text == self._last_status:
            return
        self.api.annotate(
            "v1", "ConfigMap", self.namespace, self.configmap, STATUS_ANNOTATION, text
        )
        self._last_status = text
        for o in outcomes:
            log.info(
                "data plane object %s: %s",
                o.ref,
                o.state.value,
                extra={"object": o.ref, "state": o.state.value, "detail": o.message},
            )

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                outcomes = self.pass_once()
                interval = (
                    self.settled_interval
                    if outcomes and settled(outcomes)
                    else self.pending_interval
                )
            except Exception:  # one failed pass (API server away) must not end the loop
                log.exception("data plane pass failed; retrying")
                interval = self.pending_interval
            self._stop.wait(interval)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="data-plane", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
