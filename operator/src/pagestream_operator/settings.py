"""The operator's settings: one typed object, from ``PAGESTREAM_OPERATOR_*`` variables and
command-line flags (flags win), validated once at start-up."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

ENV_PREFIX = "PAGESTREAM_OPERATOR_"


class SettingsError(ValueError):
    """A setting is invalid; the message names it."""


class OperatorSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    namespaces: tuple[str, ...] = Field(
        default=(), description="Namespaces to watch; empty means the whole cluster."
    )
    resync_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Level-based resync: every pipeline is re-checked this often.",
    )
    metrics_port: int = Field(default=8080, ge=0, le=65535, description="0 disables metrics.")
    liveness_port: int = Field(default=8081, ge=0, le=65535, description="0 disables /healthz.")
    readiness_port: int = Field(
        default=0, ge=0, le=65535, description="Serves /readyz when set; 0 (the default) does not."
    )
    bind_address: str = "0.0.0.0"
    kubeconfig: str | None = Field(default=None, description="Else $KUBECONFIG or in-cluster.")
    workers: int = Field(default=8, ge=1, le=128, description="Threads running reconciles.")
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    log_format: str = Field(default="json", pattern=r"^(json|text)$")
    data_plane_configmap: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$",
        description="A ConfigMap of the chart's data plane objects to apply once their CRDs are "
        "served (data_plane.py); unset, none.",
    )
    data_plane_resync_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How often an applied data plane is checked again (a hand edit undone, a "
        "deleted object recreated); while something waits, every 10 s or this, if shorter.",
    )
    data_plane_namespace: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
        description="The ConfigMap's namespace (the operator's own; the chart passes it).",
    )

    @model_validator(mode="after")
    def _data_plane_needs_its_namespace(self) -> OperatorSettings:
        if self.data_plane_configmap and not self.data_plane_namespace:
            raise ValueError(
                "data_plane_configmap needs data_plane_namespace (set "
                f"{ENV_PREFIX}DATA_PLANE_NAMESPACE or --data-plane-namespace)"
            )
        return self

    @classmethod
    def load(cls, argv: Sequence[str], env: Mapping[str, str] | None = None) -> OperatorSettings:
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for name in cls.model_fields:
            var = ENV_PREFIX + name.upper()
            if var in env:
                values[name] = env[var]
        args = _parser().parse_args(list(argv))
        for name, value in vars(args).items():
            if value is not None:
                values[name] = value
        if isinstance(values.get("namespaces"), str):
            values["namespaces"] = tuple(n for n in str(values["namespaces"]).split(",") if n)
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(
                (
                    f"{ENV_PREFIX}{'.'.join(map(str, e['loc'])).upper()} / "
                    f"--{'-'.join(map(str, e['loc'])).replace('_', '-')}: {e['msg']}"
                )
                # A rule across settings (a model validator) names them in its message.
                if e["loc"]
                else str(e["msg"]).removeprefix("Value error, ")
                for e in exc.errors()
            )
            raise SettingsError(problems) from exc


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pagestream-operator",
        description="Reconciles PageAnalyticsPipeline resources into Spark applications.",
    )
    p.add_argument("--namespaces", help="comma-separated namespaces (default: all)")
    p.add_argument("--resync-seconds", type=float)
    p.add_argument("--metrics-port", type=int)
    p.add_argument("--liveness-port", type=int)
    p.add_argument("--readiness-port", type=int)
    p.add_argument("--bind-address")
    p.add_argument("--kubeconfig")
    p.add_argument("--workers", type=int)
    p.add_argument("--log-level")
    p.add_argument("--log-format", choices=["json", "text"])
    p.add_argument("--data-plane-configmap")
    p.add_argument("--data-plane-namespace")
    p.add_argument("--data-plane-resync-seconds", type=float)
    return p
