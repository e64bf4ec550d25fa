"""A PageAnalyticsPipeline YAML, read and checked as a cluster would, and the job configuration
the operator would give it, moved to this machine.

The job's configuration comes from the operator's own rendering (``render.job_config``, which is
also what the SparkApplication's arguments are made of), so a local run and a Kubernetes run of the
same YAML cannot disagree. :func:`localize` is the one place that changes anything, and it changes
only *where* things are (:class:`LocalPlaces`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pagestream.local.crd_schema import FieldError, InvalidResource, validate
from pagestream.stack.paths import PIPELINE_CRD
from pagestream_common.jobconfig import JobConfig
from pagestream_operator.render import RenderInput, job_config
from pagestream_operator.spec import PipelineSpec, SpecError, parse_spec

PIPELINE_KIND = "PageAnalyticsPipeline"
# The namespace a local pipeline pretends to live in; it only shows in rendered names.
LOCAL_NAMESPACE = "local"
LOCAL_EXAMPLE = "manifests/local/page-views.yaml"
# A local pipeline keeps one checkpoint; the operator's epochs exist for stateless upgrades.
LOCAL_CHECKPOINT_EPOCH = 1


class PipelineFileError(ValueError):
    """The file is not one valid PageAnalyticsPipeline; the message says what to change."""


@dataclass(frozen=True)
class LocalPipeline:
    name: str
    source: Path
    spec: PipelineSpec
    # The resource with the CRD's defaults applied, as the API server would store it.
    resource: dict[str, Any]


def load_pipeline(path: Path) -> LocalPipeline:
    """Read the one PageAnalyticsPipeline in ``path`` (other documents, e.g. a PVC, are
    ignored) and validate it against the CRD's schema and CEL rules."""
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    except FileNotFoundError as exc:
        raise PipelineFileError(f"{path}: no such file") from exc
    except yaml.YAMLError as exc:
        raise PipelineFileError(f"{path}: not valid YAML: {exc}") from exc
    pipelines = [d for d in documents if isinstance(d, dict) and d.get("kind") == PIPELINE_KIND]
    if len(pipelines) != 1:
        raise PipelineFileError(
            f"{path}: expected exactly one {PIPELINE_KIND}, found {len(pipelines)}"
        )
    try:
        resource = validate(pipelines[0], PIPELINE_CRD)
    except InvalidResource as exc:
        raise PipelineFileError(f"{path}: {exc}") from exc
    name = resource["metadata"]["name"]
    try:
        spec = parse_spec(resource["spec"])
    except SpecError as exc:  # the CRD accepted it; the operator's model should too
        raise PipelineFileError(f"{path}: {exc}") from exc
    unsupported = [
        FieldError(path, f"{why}; remove this section for a local run ({LOCAL_EXAMPLE} has none)")
        for path, present, why in (
            (
                "spec.kafka.authentication",
                spec.kafka.authentication is not None,
                "the local Kafka broker has no SASL users",
            ),
            ("spec.kafka.tls", spec.kafka.tls is not None, "the local Kafka broker has no TLS"),
            ("spec.postgres.tls", spec.postgres.tls is not None, "the local PostgreSQL has no TLS"),
        )
        if present
    ]
    if unsupported:
        raise PipelineFileError(str(InvalidResource(PIPELINE_KIND, name, unsupported)))
    return LocalPipeline(name=name, source=path, spec=spec, resource=resource)


@dataclass(frozen=True)
class LocalPlaces:
    """Where things are on this machine, instead of in a cluster."""

    kafka_bootstrap_servers: str
    postgres_host: str
    postgres_port: int
    checkpoint_location: str
    metrics_port: int


def render_input(pipeline: LocalPipeline) -> RenderInput:
    """What the operator would render this pipeline from, in the pretend namespace."""
    return RenderInput(
        name=pipeline.name,
        namespace=LOCAL_NAMESPACE,
        spec=pipeline.spec,
        checkpoint_epoch=LOCAL_CHECKPOINT_EPOCH,
    )


def localize(pipeline: LocalPipeline, places: LocalPlaces) -> JobConfig:
    """The operator's job configuration for ``pipeline``, with only the places (and the plain
    connections to them) changed."""
    rendered = job_config(render_input(pipeline))
    return dataclasses.replace(
        rendered,
        **dataclasses.asdict(places),
        # The local PostgreSQL serves no TLS (a cnpgCluster pipeline would otherwise verify a
        # CloudNativePG certificate); the spec's tls sections are refused by load_pipeline.
        postgres_sslmode="disable",
        postgres_ssl_root_cert="",
        # No Grafana here, so no dashboard role to grant to.
        postgres_reader_role="",
    )
