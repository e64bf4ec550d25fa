"""The Kubernetes API is real: it serves a CRD, validates custom resources against its schema,
enforces RBAC, and `kubectl` works with the kubeconfig the fixtures write."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from pagestream.stack.kube import KubeControlPlane

pytestmark = pytest.mark.kube

GROUP = "probe.pagestream.dev"

WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"widgets.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {
            "plural": "widgets",
            "singular": "widget",
            "kind": "Widget",
            "shortNames": ["wdg"],
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1, "maximum": 10},
                                    "color": {"type": "string", "enum": ["red", "blue"]},
                                },
                                "x-kubernetes-validations": [
                                    {
                                        "rule": "self.color != 'red' || self.size <= 5",
                                        "message": "red widgets are at most size 5",
                                    }
                                ],
                            }
                        },
                    }
                },
            }
        ],
    },
}


@pytest.fixture(scope="module")
def api(kube: KubeControlPlane) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(kube.kubeconfig))


@pytest.fixture(scope="module")
def widget_crd(api: client.ApiClient) -> str:
    ext = client.ApiextensionsV1Api(api)
    try:
        ext.create_custom_resource_definition(WIDGET_CRD)
    except ApiException as exc:
        if exc.status != 409:
            raise
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        crd = ext.read_custom_resource_definition(f"widgets.{GROUP}")
        conditions = {c.type: c.status for c in (crd.status.conditions or [])}
        if conditions.get("Established") == "True":
            return f"widgets.{GROUP}"
        time.sleep(0.2)
    raise AssertionError("CRD never became Established")


def _widget(name: str, **spec: object) -> dict:
    return {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec}


def test_version_is_the_pinned_release(kube: KubeControlPlane) -> None:
    version = kube.get("/version")
    assert version["gitVersion"] == "v1.34.4"
    assert (version["major"], version["minor"]) == ("1", "34")


def test_accepts_a_valid_custom_resource(api: client.ApiClient, widget_crd: str) -> None:
    objects = client.CustomObjectsApi(api)
    created = objects.create_namespaced_custom_object(
        GROUP, "v1", "default", "widgets", _widget("small", size=3, color="red")
    )
    assert created["metadata"]["uid"]
    fetched = objects.get_namespaced_custom_object(GROUP, "v1", "default", "widgets", "small")
    assert fetched["spec"] == {"size": 3, "color": "red"}


@pytest.mark.parametrize(
    ("spec", "field", "reason"),
    [
        ({"size": 0}, "spec.size", "should be greater than or equal to 1"),
        ({"size": 2, "color": "green"}, "spec.color", 'supported values: "red", "blue"'),
        ({"color": "blue"}, "spec.size", "Required value"),
        ({"size": 8, "color": "red"}, "spec", "red widgets are at most size 5"),
    ],
)
def test_rejects_resources_that_violate_the_schema(
    api: client.ApiClient, widget_crd: str, spec: dict, field: str, reason: str
) -> None:
    objects = client.CustomObjectsApi(api)
    with pytest.raises(ApiException) as info:
        objects.create_namespaced_custom_object(
            GROUP, "v1", "default", "widgets", _widget(f"bad-{uuid.uuid4().hex[:6]}", **spec)
        )
    assert info.value.status == 422
    body = json.loads(info.value.body)
    causes = body["details"]["causes"]
    assert any(c["field"] == field and reason in c["message"] for c in causes), causes


def test_kubectl_lists_the_resource_with_the_fixture_kubeconfig(
    kube: KubeControlPlane, api: client.ApiClient, widget_crd: str
) -> None:
    objects = client.CustomObjectsApi(api)
    objects.create_namespaced_custom_object(
        GROUP, "v1", "default", "widgets", _widget("listed", size=1)
    )
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is part of this machine kind; `make bootstrap` checks for it"
    proc = subprocess.run(
        [kubectl, "get", "wdg", "-o", "name"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "KUBECONFIG": str(kube.kubeconfig)},
    )
    assert "widget.probe.pagestream.dev/listed" in proc.stdout.split()


def test_rbac_is_enforced(kube: KubeControlPlane, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    sa_name = f"probe-{uuid.uuid4().hex[:6]}"
    core.create_namespaced_service_account("default", {"metadata": {"name": sa_name}})
    token = core.create_namespaced_service_account_token(
        sa_name, "default", {"spec": {"expirationSeconds": 600}}
    ).status.token
    cfg = client.Configuration()
    cfg.host = kube.server
    cfg.ssl_ca_cert = str(kube.pki / "ca.crt")
    cfg.api_key = {"authorization": f"Bearer {token}"}
    restricted = client.CoreV1Api(client.ApiClient(cfg))
    with pytest.raises(ApiException) as info:
        restricted.list_namespaced_secret("default")
    assert info.value.status == 403
    assert f"system:serviceaccount:default:{sa_name}" in info.value.body
