"""A pipeline YAML is checked locally exactly as kube-apiserver checks it: the same YAMLs are
refused with the same field messages (compared with a server-side dry-run create against the real
API server with the CRD installed), and `pagestream up` refuses an invalid one before anything
starts. The local checks alone are unit tests (tests/unit/cli/test_local_pipeline.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from local_pipeline_cases import INVALID, base, edited, local_messages

from pagestream.stack.kube import KubeControlPlane
from pagestream.stack.paths import PIPELINE_CRD, StackPaths

# --- the same YAMLs against the real API server ----------------------------------------------


@pytest.fixture(scope="module")
def crd_installed(kube: KubeControlPlane) -> KubeControlPlane:
    env = {**os.environ, "KUBECONFIG": str(kube.kubeconfig)}
    for argv in (
        [
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=embedded-test",
            "-f",
            str(PIPELINE_CRD),
        ],
        [
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/pageanalyticspipelines.pagestream.dev",
        ],
    ):
        proc = subprocess.run(
            ["kubectl", *argv], env=env, capture_output=True, text=True, timeout=90
        )
        assert proc.returncode == 0, proc.stderr
    return kube


def _server_messages(kube: KubeControlPlane, resource: dict[str, Any]) -> list[str]:
    """A dry-run create; the refusal's causes as `field: message`, as kubectl prints them."""
    request = urllib.request.Request(
        f"{kube.server}/apis/pagestream.dev/v1alpha1/namespaces/default/pageanalyticspipelines"
        "?dryRun=All&fieldValidation=Strict",
        data=json.dumps(resource).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, context=kube.ssl_context(), timeout=30):
            return []
    except urllib.error.HTTPError as exc:
        status = json.load(exc)
    assert status["reason"] == "Invalid", status
    return sorted(f"{c['field']}: {c['message']}" for c in status["details"]["causes"])


@pytest.mark.kube
@pytest.mark.parametrize("case", ["valid", *sorted(INVALID)])
def test_messages_match_the_api_server(crd_installed: KubeControlPlane, case: str) -> None:
    resource = base() if case == "valid" else edited(INVALID[case][0])
    assert local_messages(resource) == _server_messages(crd_installed, resource)


# --- `pagestream up` refuses before starting anything ----------------------------------------


@pytest.mark.parametrize("case", ["bad-enum", "negative-cores", "both-kafka-sources"])
def test_up_refuses_an_invalid_pipeline_before_anything_starts(
    stack_paths: StackPaths, tmp_path: Path, case: str
) -> None:
    edit, field = INVALID[case]
    pipeline_file = tmp_path / f"{case}.yaml"
    pipeline_file.write_text(yaml.safe_dump(edited(edit)))
    state = stack_paths.state.parent / f"refused-{case}"
    proc = subprocess.run(
        [sys.executable, "-m", "pagestream", "up", "-f", str(pipeline_file)],
        env={**os.environ, "PAGESTREAM_STATE_DIR": str(state)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert 'The PageAnalyticsPipeline "page-views" is invalid:' in proc.stderr
    assert f"* {field}: " in proc.stderr
    assert not state.exists(), "nothing may start (or be written) for an invalid pipeline"
