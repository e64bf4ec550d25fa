"""skaffold.yaml against skaffold's published JSON schema, and the references the schema cannot
check: images the chart values use are images skaffold builds, files named exist, the kind
profile matches manifests/kind-cluster.yaml.

The schema ships in skaffold's Go module (docs-v2/content/en/schemas/<version>.json); it is
fetched with `go mod download` (verified by Go's checksum database) into the cache, then the
file's own digest is checked, so the test validates against exactly the pinned schema."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from chart_harness import go_module_dir

from pagestream.stack.images import RECIPES
from pagestream.stack.paths import REPO_ROOT, StackPaths

SKAFFOLD_MODULE = "github.com/GoogleContainerTools/skaffold/v2"
SKAFFOLD_VERSION = "v2.16.1"
SCHEMA_VERSION = "v4beta13"  # pkg/skaffold/schema/latest/config.go of that version
SCHEMA_SHA256 = "60aa19bdc634299263af120abee0ca47162315511dd10788f19f4741147857b9"
CONFIG = REPO_ROOT / "skaffold.yaml"


def skaffold_schema(cache: Path) -> dict[str, Any]:
    final = cache / "skaffold" / SKAFFOLD_VERSION / f"{SCHEMA_VERSION}.json"
    if not final.exists():
        scratch = final.parent / ".gomod"
        scratch.mkdir(parents=True, exist_ok=True)
        module = go_module_dir(SKAFFOLD_MODULE, SKAFFOLD_VERSION, scratch)
        source = module / "docs-v2/content/en/schemas" / f"{SCHEMA_VERSION}.json"
        tmp = final.with_suffix(".tmp")
        shutil.copyfile(source, tmp)
        tmp.replace(final)
    data = final.read_bytes()
    assert hashlib.sha256(data).hexdigest() == SCHEMA_SHA256, f"{final} is not the pinned schema"
    return json.loads(data)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def schema(stack_paths: StackPaths) -> dict[str, Any]:
    return skaffold_schema(stack_paths.cache)


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return yaml.safe_load(CONFIG.read_text())  # type: ignore[no-any-return]


def test_skaffold_yaml_is_valid_against_the_schema(
    schema: dict[str, Any], config: dict[str, Any]
) -> None:
    assert config["apiVersion"] == f"skaffold/{SCHEMA_VERSION}"
    errors = [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(config)]
    assert errors == []


def test_schema_rejects_a_typo(schema: dict[str, Any], config: dict[str, Any]) -> None:
    """The check is real: an unknown field under deploy.helm makes the config invalid."""
    broken = json.loads(json.dumps(config))
    broken["deploy"]["helm"]["relases"] = broken["deploy"]["helm"].pop("releases")
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken))


def test_it_builds_the_three_images_from_existing_dockerfiles(config: dict[str, Any]) -> None:
    artifacts = {a["image"]: a for a in config["build"]["artifacts"]}
    assert set(artifacts) == {"pagestream-operator", "pagestream-spark", "pagestream-simulator"}
    for artifact in artifacts.values():
        assert (
            REPO_ROOT / artifact.get("context", ".") / artifact["docker"]["dockerfile"]
        ).is_file()


def test_it_builds_each_image_as_pagestreams_builder_does(config: dict[str, Any]) -> None:
    """The Dockerfile, target and build arguments of each artifact are its recipe's."""
    built = {}
    for artifact in config["build"]["artifacts"]:
        docker = artifact["docker"]
        assert Path(artifact.get("context", ".")) == Path(".")
        built[artifact["image"].removeprefix("pagestream-")] = (
            docker["dockerfile"],
            docker.get("target"),
            docker.get("buildArgs", {}),
        )
    assert built == {c: (r.dockerfile, r.target, dict(r.args)) for c, r in RECIPES.items()}


def test_deploys_the_chart_with_the_built_tags(config: dict[str, Any]) -> None:
    built = {re.sub(r"[^A-Za-z0-9]", "_", a["image"]) for a in config["build"]["artifacts"]}
    releases = config["deploy"]["helm"]["releases"]
    # One release by the chart's defaults: the operator applies the data plane (data-plane.yaml).
    assert [r["name"] for r in releases] == ["pagestream"]
    assert "valuesFiles" not in releases[0]
    assert releases[0]["setValues"] == {"examplePipeline.create": True}
    templates = releases[0]["setValueTemplates"]
    used = set()
    for value in templates.values():
        for name in re.findall(r"\{\{\.IMAGE_(?:REPO|TAG|FULLY_QUALIFIED|DIGEST)_(\w+)\}\}", value):
            used.add(name)
    assert used == {"pagestream_operator", "pagestream_spark"} and used <= built
    values = yaml.safe_load((REPO_ROOT / "charts/pagestream/values.yaml").read_text())
    for key in templates:
        node: Any = values
        for part in key.split("."):
            assert part in node, f"setValueTemplates sets {key}, which values.yaml lacks"
            node = node[part]
    for release in releases:
        assert (REPO_ROOT / release["chartPath"] / "Chart.yaml").is_file()
        for path in release.get("valuesFiles", []):
            assert (REPO_ROOT / path).is_file()
    # The simulator image goes into the raw manifest skaffold deploys beside the chart.
    (raw,) = config["manifests"]["rawYaml"]
    job = yaml.safe_load((REPO_ROOT / raw).read_text())
    assert job["spec"]["template"]["spec"]["containers"][0]["image"].split(":")[0] == (
        "pagestream-simulator"
    )


def test_profiles_and_port_forwards(config: dict[str, Any]) -> None:
    kind_name = yaml.safe_load((REPO_ROOT / "manifests/kind-cluster.yaml").read_text())["name"]
    profiles = {p["name"]: p for p in config["profiles"]}
    assert set(profiles) == {"kind", "minikube", "pagestream-node"}
    assert profiles["kind"]["activation"] == [{"kubeContext": f"kind-{kind_name}"}]
    assert profiles["minikube"]["activation"] == [{"kubeContext": "minikube"}]
    forwards = {f["resourceName"]: f for f in config["portForward"]}
    assert forwards["pagestream-grafana"]["localPort"] == 3000
    assert forwards["kube-prometheus-stack-prometheus"]["port"] == 9090
    values = yaml.safe_load((REPO_ROOT / "charts/pagestream/values.yaml").read_text())
    assert values["kubePrometheusStack"]["fullnameOverride"] == "kube-prometheus-stack"


def test_the_node_profile_builds_each_image_with_pagestreams_builder(
    config: dict[str, Any],
) -> None:
    from pagestream.stack.node import skaffold as node_skaffold
    from pagestream.stack.node.config import kubeconfig

    profile = next(p for p in config["profiles"] if p["name"] == node_skaffold.PROFILE)
    context = kubeconfig(server="x", pki=Path("/p"), user="u", cert="c")["current-context"]
    assert profile["activation"] == [{"kubeContext": context}]
    patches = {p["path"]: p for p in profile["patches"]}
    artifacts = patches["/build/artifacts"]["value"]
    assert [a["image"] for a in artifacts] == [a["image"] for a in config["build"]["artifacts"]]
    for artifact in artifacts:
        component = artifact["image"].removeprefix("pagestream-")
        assert artifact["custom"]["buildCommand"] == f"sh dev/skaffold-node.sh build {component}"
        assert artifact["custom"]["dependencies"]["command"] == (
            f"sh dev/skaffold-node.sh inputs {component}"
        )
    (release,) = patches["/deploy/helm/releases"]["value"]
    assert Path(release["chartPath"]) == node_skaffold.CHART_COPY
    for path in release["valuesFiles"]:
        assert (REPO_ROOT / path).is_file()
