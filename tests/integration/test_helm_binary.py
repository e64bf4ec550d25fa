"""helm is the pinned build, and renders a chart."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pagestream.stack.helm import Helm

pytestmark = pytest.mark.helm


def test_version_is_pinned(helm: Helm) -> None:
    out = helm.run("version", "--short").stdout
    assert out.startswith("v3.22.0")


def test_template_renders_a_trivial_chart(helm: Helm, tmp_path: Path) -> None:
    chart = tmp_path / "probe"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(
        "apiVersion: v2\nname: probe\nversion: 0.1.0\nkubeVersion: '>=1.30.0-0'\n"
    )
    (chart / "values.yaml").write_text("greeting: hello\nreplicas: 2\n")
    (chart / "templates" / "configmap.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-probe\n"
        "data:\n"
        "  greeting: {{ .Values.greeting | quote }}\n"
        "  replicas: {{ .Values.replicas | quote }}\n"
        "  kube: {{ .Capabilities.KubeVersion.Version | quote }}\n"
    )
    rendered = helm.run("template", "demo", str(chart), "--set", "greeting=bonjour").stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    assert docs == [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "demo-probe"},
            "data": {"greeting": "bonjour", "replicas": "2", "kube": "v1.37.0"},
        }
    ]
