"""The streaming job's configuration: one typed object, and the one mapping between it and the
command line / environment.

The operator renders a SparkApplication with ``JobConfig.to_args()`` and ``SECRET_ENV``; the job
parses the same flags with ``JobConfig.from_args()``. Both sides import this module, so a Kubernetes
run and a local run cannot disagree about names. Secrets never travel as arguments: they come
from environment variables or files (mounted Kubernetes secrets).
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

# Environment variables carrying secrets; each also accepts <NAME>_FILE pointing at a file.
SECRET_ENV = {
    "kafka_sasl_username": "PAGESTREAM_KAFKA_SASL_USERNAME",
    "kafka_sasl_password": "PAGESTREAM_KAFKA_SASL_PASSWORD",
    "postgres_user": "PAGESTREAM_POSTGRES_USER",
    "postgres_password": "PAGESTREAM_POSTGRES_PASSWORD",
    "pii_hash_key": "PAGESTREAM_PII_HASH_KEY",
}

# libpq's sslmode values, weakest first (allow, prefer's weaker twin, is left out).
POSTGRES_SSL_MODES = ("disable", "prefer", "require", "verify-ca", "verify-full")

# A lower-case SQL identifier (the schema, the reader role): safe unquoted, at most 63 bytes.
_SQL_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_DURATION = re.compile(r"^\d+ (millisecond|milliseconds|second|seconds|minute|minutes|hour|hours)$")
_UNIT_SECONDS = {"millisecond": 0.001, "second": 1, "minute": 60, "hour": 3600}


def duration_seconds(text: str) -> float:
    """Seconds in a duration such as ``"2 hours"`` (the form every duration flag takes)."""
    if not _DURATION.match(text):
        raise JobConfigError(f"{text!r} is not a duration like '5 seconds' or '2 hours'")
    count, unit = text.split()
    return int(count) * _UNIT_SECONDS[unit.removesuffix("s")]


class JobConfigError(ValueError):
    """A configuration value is missing or invalid; the message names the setting."""


# The job refuses to start without the PII key: the visitor id's daily salt is derived from it
# (and e-mail addresses are hashed with it), so under an empty or known key visitor ids could
# be recomputed from site, IP and user agent.
PII_HASH_KEY_REQUIRED = (
    "PAGESTREAM_PII_HASH_KEY is required: visitor ids are salted with this key (and e-mail "
    "addresses hashed with it); set PAGESTREAM_PII_HASH_KEY or PAGESTREAM_PII_HASH_KEY_FILE to "
    "a long random value (on Kubernetes: create a Secret with a random key and reference it in "
    "spec.processing.pii.hashKeySecretRef)"
)


@dataclass(frozen=True)
class Secrets:
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None
    postgres_user: str = "postgres"
    postgres_password: str = ""
    # No default: every job has a key (see PII_HASH_KEY_REQUIRED); an empty one is refused.
    pii_hash_key: str = field(kw_only=True)

    def __post_init__(self) -> None:
        if not self.pii_hash_key.strip():
            raise JobConfigError(PII_HASH_KEY_REQUIRED)

    def __repr__(self) -> str:  # never print secret values
        return "Secrets(<redacted>)"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Secrets:
        """The secrets from ``env``; :class:`JobConfigError` when the PII key is missing or
        empty, or a ``_FILE`` cannot be read."""
        values: dict[str, str] = {}
        for name, var in SECRET_ENV.items():
            if var in env:
                values[name] = env[var]
            elif f"{var}_FILE" in env:
                try:
                    values[name] = Path(env[f"{var}_FILE"]).read_text().strip()
                except OSError as exc:
                    raise JobConfigError(
                        f"{var}_FILE: cannot read {env[f'{var}_FILE']}: {exc}"
                    ) from exc
        pii_hash_key = values.pop("pii_hash_key", "")
        return cls(**values, pii_hash_key=pii_hash_key)


@dataclass(frozen=True)
class JobConfig:
    """Non-secret settings, each one a ``--flag`` of the job (underscores become dashes)."""

    pipeline_name: str
    kafka_bootstrap_servers: str
    kafka_topic: str
    postgres_host: str
    checkpoint_location: str
    postgres_port: int = 5432
    postgres_database: str = "pagestream"
    postgres_schema: str = "pagestream"
    # libpq's sslmode, and for verify-ca / verify-full the PEM file with the server's CA
    # (empty: the system trust store).
    postgres_sslmode: str = "prefer"
    postgres_ssl_root_cert: str = ""
    # A role given read-only access (USAGE and SELECT, now and on future tables) to the
    # schema: what dashboards log in as. Empty: no grants.
    postgres_reader_role: str = ""
    kafka_starting_offsets: str = "earliest"
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = "SCRAM-SHA-512"
    # A PEM file with the CA(s) that sign the brokers' certificates (SSL and SASL_SSL);
    # empty: the system trust store. Host names are always verified.
    kafka_tls_ca_file: str = ""
    max_offsets_per_trigger: int = 200_000
    trigger_interval: str = "5 seconds"
    # processing-time: run forever, a micro-batch every trigger_interval. available-now: drain
    # what the topic holds at start, then stop (backfills, benchmarks, tests).
    trigger_mode: str = "processing-time"
    watermark_delay: str = "2 hours"
    bot_filtering: bool = True
    anonymize_ip: bool = True
    hash_email: bool = True
    metrics_port: int = 9108
    report_timezone: str = "UTC"
    # Whole UTC days of facts, event ids and minute rollups kept (0: forever). Older events are
    # dead-lettered as past_retention; a day's partitions are dropped a day after they fall
    # out (docs/streaming-job.md, "Partitions and retention").
    retention_days: int = 90
    # Whole UTC days of hour and day rollups and visitor days kept (0: forever); at least
    # retention_days when both are finite.
    rollup_retention_days: int = 730

    def __post_init__(self) -> None:
        for name in (
            "pipeline_name",
            "kafka_bootstrap_servers",
            "kafka_topic",
            "postgres_host",
            "checkpoint_location",
        ):
            if not getattr(self, name):
                raise JobConfigError(f"--{_flag(name)} is required")
        if self.kafka_starting_offsets not in ("earliest", "latest"):
            raise JobConfigError("--kafka-starting-offsets must be earliest or latest")
        if self.kafka_security_protocol not in ("PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"):
            raise JobConfigError(
                "--kafka-security-protocol must be PLAINTEXT, SASL_PLAINTEXT, SASL_SSL or SSL"
            )
        if self.kafka_sasl_mechanism not in ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"):
            raise JobConfigError(
                "--kafka-sasl-mechanism must be SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN"
            )
        if self.kafka_tls_ca_file and self.kafka_security_protocol not in ("SSL", "SASL_SSL"):
            raise JobConfigError(
                "--kafka-tls-ca-file is for TLS listeners: set --kafka-security-protocol to SSL "
                "or SASL_SSL, or drop the CA file"
            )
        if self.postgres_sslmode not in POSTGRES_SSL_MODES:
            raise JobConfigError(
                f"--postgres-sslmode must be one of {', '.join(POSTGRES_SSL_MODES)}"
            )
        if self.postgres_ssl_root_cert and not self.postgres_sslmode.startswith("verify-"):
            raise JobConfigError(
                "--postgres-ssl-root-cert is only used to verify the server: set "
                "--postgres-sslmode to verify-full (or verify-ca), or drop the CA file"
            )
        if self.trigger_mode not in ("processing-time", "available-now"):
            raise JobConfigError("--trigger-mode must be processing-time or available-now")
        if self.max_offsets_per_trigger < 1:
            raise JobConfigError("--max-offsets-per-trigger must be at least 1")
        for name in ("trigger_interval", "watermark_delay"):
            if not _DURATION.match(getattr(self, name)):
                raise JobConfigError(
                    f"--{_flag(name)} must look like '5 seconds', '10 minutes' or '2 hours'"
                )
        if not 1 <= self.metrics_port <= 65535:
            raise JobConfigError("--metrics-port must be a TCP port (1-65535)")
        if not _SQL_IDENTIFIER.fullmatch(self.postgres_schema):
            raise JobConfigError("--postgres-schema must be a lower-case SQL identifier")
        if self.postgres_reader_role and not _SQL_IDENTIFIER.fullmatch(self.postgres_reader_role):
            raise JobConfigError("--postgres-reader-role must be a lower-case SQL identifier")
        for name in ("retention_days", "rollup_retention_days"):
            if getattr(self, name) < 0:
                raise JobConfigError(f"--{_flag(name)} must be a number of days, or 0 for forever")
        if self.rollup_retention_days and (
            not self.retention_days or self.rollup_retention_days < self.retention_days
        ):
            raise JobConfigError(
                "--rollup-retention-days must be at least --retention-days (rollups outlive "
                "the events they count), or 0 for forever"
            )

    def to_args(self) -> list[str]:
        """The job's command-line arguments, in declaration order (stable for golden files).
        An empty optional string (no CA file) is left out: its default is the same."""
        args: list[str] = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value == "" and f.default == "":
                continue
            if isinstance(value, bool):
                args.append(f"--{_flag(f.name)}" if value else f"--no-{_flag(f.name)}")
            else:
                args += [f"--{_flag(f.name)}", str(value)]
        return args

    @classmethod
    def parser(cls) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(
            prog="pagestream-job", description="pagestream streaming job"
        )
        for f in fields(cls):
            flag = f"--{_flag(f.name)}"
            if f.type in ("bool", bool):
                parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default)
            else:
                conv = int if f.type in ("int", int) else str
                required = f.default is MISSING
                parser.add_argument(
                    flag, type=conv, required=required, default=None if required else f.default
                )
        return parser

    @classmethod
    def from_args(cls, argv: Sequence[str]) -> JobConfig:
        ns = cls.parser().parse_args(list(argv))
        return cls(**{f.name: getattr(ns, f.name) for f in fields(cls)})

    @classmethod
    def from_env_and_args(
        cls, argv: Sequence[str], env: Mapping[str, str] | None = None
    ) -> tuple[JobConfig, Secrets]:
        return cls.from_args(argv), Secrets.from_env(os.environ if env is None else env)


def _flag(name: str) -> str:
    return name.replace("_", "-")
