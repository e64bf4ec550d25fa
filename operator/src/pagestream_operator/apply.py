"""Applying: rendered objects go to the API server with server-side apply.

Every child is applied whole with one field manager and ``force=True``: the operator owns
every field it renders, so a hand edit of such a field is overwritten on the next pass (drift
correction), and fields it does not render (a status, a label another tool adds) are left
alone. Owner references make the garbage collector delete children with their pipeline.

The calls go through the kubernetes client's generic ``call_api`` with paths built from
:data:`render.CHILD_KINDS`, so applying needs no API discovery and every kind is handled the
same way. A 404 on delete counts as success: the object is gone either way. The one discovery
call, :meth:`KubeApi.serves`, decides what monitor ``Auto`` becomes.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from pagestream_operator.data_plane import DATA_PLANE_KINDS
from pagestream_operator.render import CHILD_KINDS
from pagestream_operator.spec import API_GROUP, API_VERSION, KIND, PLURAL
from pagestream_operator.status import ChildStatus

FIELD_MANAGER = "pagestream-operator"
PIPELINE_API = f"{API_GROUP}/{API_VERSION}"
PLURALS = {(api, kind): plural for api, kind, plural in (*CHILD_KINDS, *DATA_PLANE_KINDS)}
PLURALS[(PIPELINE_API, KIND)] = PLURAL


@dataclass(frozen=True)
class ChildRef:
    api_version: str
    kind: str
    name: str

    @classmethod
    def of(cls, obj: dict[str, Any]) -> ChildRef:
        return cls(obj["apiVersion"], obj["kind"], obj["metadata"]["name"])

    @classmethod
    def from_status(cls, raw: dict[str, Any]) -> ChildRef | None:
        try:
            return cls(raw["apiVersion"], raw["kind"], raw["name"])
        except KeyError:
            return None

    def to_status(self) -> ChildStatus:
        return ChildStatus(api_version=self.api_version, kind=self.kind, name=self.name)

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


def owner_reference(pipeline: dict[str, Any]) -> dict[str, Any]:
    meta = pipeline["metadata"]
    return {
        "apiVersion": PIPELINE_API,
        "kind": KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owned(obj: dict[str, Any], pipeline: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``obj`` owned by ``pipeline``."""
    meta = dict(obj["metadata"])
    meta["ownerReferences"] = [owner_reference(pipeline)]
    return {**obj, "metadata": meta}


def _path(api_version: str, kind: str, namespace: str, name: str) -> str:
    plural = PLURALS[(api_version, kind)]
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    return f"{base}/namespaces/{namespace}/{plural}/{name}"


class KubeApi:
    """The few calls the operator makes, on one kubernetes ``ApiClient``."""

    # How long an answer of :meth:`serves` is kept: a CRD installed later is noticed within it.
    SERVED_TTL_SECONDS = 60.0

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client
        self._served: dict[str, tuple[float, frozenset[str]]] = {}
        self._served_lock = threading.Lock()

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
        timeout: float = 30,
    ) -> dict[str, Any] | None:
        method, url, headers, payload, post = self.api_client.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api_client.call_api(
            method,
            url,
            header_params=headers,
            body=payload,
            post_params=post,
            _request_timeout=timeout,
        )
        response.read()
        text = response.data.decode() if response.data else ""
        if not 200 <= response.status <= 299:
            raise ApiException.from_response(http_resp=response, body=text, data=None)
        if not text:
            return None
        # The API server answers with a JSON object: the resource, or a Status.
        document: dict[str, Any] = json.loads(text)
        return document

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._call("GET", _path(api_version, kind, namespace, name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        path = _path(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        applied = self._call(
            "PATCH",
            path,
            # JSON is YAML; the client only serialises bodies itself for JSON content types.
            body=json.dumps(obj),
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )
        # Server-side apply answers with the object as applied, never with an empty body.
        assert applied is not None
        return applied

    def delete(self, ref: ChildRef, namespace: str) -> bool:
        """Delete a child; False when it was already gone (which is success too)."""
        try:
            self._call(
                "DELETE",
                _path(ref.api_version, ref.kind, namespace, ref.name),
                body={"propagationPolicy": "Background"},
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def names_labelled(
        self, api_version: str, kind: str, namespace: str, selector: str
    ) -> list[str]:
        """The names of the ``kind`` objects in ``namespace`` matching a label selector."""
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        plural = PLURALS[(api_version, kind)]
        listed = self._call(
            "GET", f"{base}/namespaces/{namespace}/{plural}", query=[("labelSelector", selector)]
        )
        return [item["metadata"]["name"] for item in (listed or {}).get("items") or []]

    def annotate(
        self, api_version: str, kind: str, namespace: str, name: str, key: str, value: str
    ) -> None:
        """Set one annotation (a merge patch of just that key)."""
        self._call(
            "PATCH",
            _path(api_version, kind, namespace, name),
            body={"metadata": {"annotations": {key: value}}},
            content_type="application/merge-patch+json",
        )

    def serves(self, api_version: str, kind: str, *, max_age: float | None = None) -> bool:
        """Whether the API server serves ``kind`` of ``api_version`` (its CRD is installed), from
        the group version's discovery document, which every authenticated user may read. The
        only discovery the operator does: for monitor Auto and the data plane. An answer is kept
        for ``max_age`` seconds (``SERVED_TTL_SECONDS`` by default)."""
        now = time.monotonic()
        ttl = self.SERVED_TTL_SECONDS if max_age is None else max_age
        with self._served_lock:
            cached = self._served.get(api_version)
        if cached is None or now - cached[0] > ttl:
            base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            try:
                document = self._call("GET", base) or {}
            except ApiException as exc:
                if exc.status != 404:
                    raise
                document = {}
            kinds = frozenset(r.get("kind", "") for r in document.get("resources") or [])
            cached = (now, kinds)
            with self._served_lock:
                self._served[api_version] = cached
        return kind in cached[1]

    def get_pipeline(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get(PIPELINE_API, KIND, namespace, name)

    def patch_pipeline_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Merge-patch status. No resourceVersion: status is recomputed from scratch on every
        pass, so the last writer is right, and a conflict would only delay convergence."""
        self._call(
            "PATCH",
            _path(PIPELINE_API, KIND, namespace, name) + "/status",
            body={"status": status},
            content_type="application/merge-patch+json",
        )

    def check_pipelines_readable(self, namespaces: Sequence[str], *, timeout: float = 4) -> None:
        """List at most one pipeline in each namespace (all of them if none is given), as the
        operator's watches do; raise, saying where and why, if the API server refuses or does
        not answer. The readiness check (readiness.py)."""
        base = f"/apis/{PIPELINE_API}"
        for namespace in namespaces or [""]:
            path = f"{base}/namespaces/{namespace}/{PLURAL}" if namespace else f"{base}/{PLURAL}"
            where = f"in namespace {namespace}" if namespace else "in all namespaces"
            try:
                self._call("GET", path, query=[("limit", "1")], timeout=timeout)
            except ApiException as exc:
                raise RuntimeError(f"listing {PLURAL} {where}: {exc.status} {exc.reason}") from exc
            except Exception as exc:
                raise RuntimeError(f"listing {PLURAL} {where}: {exc}") from exc


def new_api(kubeconfig: str | None = None, *, pool_size: int = 8) -> KubeApi:
    """A client from a kubeconfig file, ``$KUBECONFIG``, or the in-cluster service account.
    ``pool_size`` should match the handler threads, so none waits for a connection."""
    import os

    from kubernetes import config

    cfg = client.Configuration()
    if kubeconfig or os.environ.get("KUBECONFIG") or not os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    else:
        config.load_incluster_config(client_configuration=cfg)
    cfg.connection_pool_maxsize = pool_size
    return KubeApi(client.ApiClient(cfg))
