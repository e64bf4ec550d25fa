"""The PageAnalyticsPipeline spec as typed objects, mirroring the CRD schema.

The CRD (charts/pagestream/crds/pagestream.dev_pageanalyticspipelines.yaml) is the source of
truth; the API server validates and defaults every pipeline against it before the operator sees
it. This model parses that already-valid spec once, at the edge, so the rest of the operator
works with typed values. ``tests/unit/operator/test_spec.py`` checks that field names and
defaults here agree with the CRD. The cross-field rules the CRD states in CEL are checked again
in :meth:`PipelineSpec.problems`, so a pipeline created before a rule existed (or a unit test)
gets the same message.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic.alias_generators import to_camel

API_GROUP = "pagestream.dev"
API_VERSION = "v1alpha1"
KIND = "PageAnalyticsPipeline"
PLURAL = "pageanalyticspipelines"


class SpecError(ValueError):
    """The spec can never be deployed as it is; the message names the field."""


class DiffType(StrEnum):
    """What a change to a spec field needs, after the Flink Kubernetes Operator's ``DiffType``.
    Each field declares its own with :class:`SpecDiff`; :mod:`.upgrade` acts on them."""

    # The job is untouched: the field configures other children (the KafkaTopic, monitoring)
    # or how the operator itself acts (suspend and resume are the lifecycle's own transitions,
    # which keep the checkpoint by definition, as Flink's job.state and upgradeMode are IGNORE).
    IGNORE = "ignore"
    # The job is restarted with its checkpoint whatever upgradeMode says: the field changes the
    # SparkApplication, and the Spark operator resubmits an application on any spec change (it
    # cannot rescale a running one).
    RESTART = "restart"
    # The job is restarted with the change, and upgradeMode decides whether it keeps its
    # checkpoint. Every field not marked otherwise: the safe class for a field added later.
    UPGRADE = "upgrade"


@dataclass(frozen=True)
class SpecDiff:
    """Marks a field's :class:`DiffType` in its annotation, as Flink's ``@SpecDiff`` does:
    ``instances: Annotated[int, SpecDiff(DiffType.RESTART)]``. On a nested model's field it
    applies to every field under it."""

    type: DiffType


IGNORE = SpecDiff(DiffType.IGNORE)
RESTART = SpecDiff(DiffType.RESTART)


class _Model(BaseModel):
    # Unknown fields are ignored rather than rejected: the API server already pruned anything
    # the CRD does not declare, and a newer CRD must not break an older operator.
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore"
    )


Duration = Annotated[str, Field(pattern=r"^[0-9]+ (second|seconds|minute|minutes|hour|hours)$")]
SparkMemory = Annotated[str, Field(pattern=r"^[1-9][0-9]*[kmgt]$")]
# A Kubernetes CPU quantity: whole or decimal cores, or millicores (500m, 0.5, 2).
CpuQuantity = Annotated[str, Field(max_length=16, pattern=r"^[0-9]+(\.[0-9]+)?m?$")]
Port = Annotated[int, Field(ge=1, le=65535)]
# Kubernetes label keys (also node-selector and annotation keys, toleration keys): an optional
# DNS-subdomain prefix and a slash, then a name of at most 63 characters. The CRD states the
# same patterns (its CEL rules have no backslashes, hence [.] for a dot).
QUALIFIED_NAME = (
    r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"
QualifiedName = Annotated[str, Field(max_length=317, pattern=QUALIFIED_NAME)]
LabelValue = Annotated[str, Field(max_length=63, pattern=LABEL_VALUE)]


# --- kafka -----------------------------------------------------------------------------------


class StrimziClusterRef(_Model):
    name: str = Field(min_length=1)
    port: Port = 9092


class TopicSpec(_Model):
    name: str = Field(min_length=1, max_length=249, pattern=r"^[A-Za-z0-9._\-]+$")
    # The topic's settings change the KafkaTopic (Strimzi applies them), not the job.
    manage: Annotated[bool, IGNORE] = False
    partitions: Annotated[int, IGNORE] = Field(default=6, ge=1, le=10000)
    replicas: Annotated[int, IGNORE] = Field(default=3, ge=1, le=32)
    retention_hours: Annotated[int, IGNORE] = Field(default=168, ge=1, le=87600)


class SaslMechanism(StrEnum):
    SCRAM_SHA_512 = "SCRAM-SHA-512"
    SCRAM_SHA_256 = "SCRAM-SHA-256"


class SaslSecurityProtocol(StrEnum):
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class KafkaSecretRef(_Model):
    name: str = Field(min_length=1)
    password_key: str = "password"
    username_key: str | None = None


class KafkaAuthentication(_Model):
    mechanism: SaslMechanism = SaslMechanism.SCRAM_SHA_512
    # No default: unset, it follows spec.kafka.tls (KafkaSpec.security_protocol).
    security_protocol: SaslSecurityProtocol | None = None
    username: str | None = None
    secret_ref: KafkaSecretRef


class CaSecretRef(_Model):
    """A CA certificate (PEM) in a Secret: Strimzi's <cluster>-cluster-ca-cert and
    CloudNativePG's <cluster>-ca both keep it under ca.crt."""

    name: str = Field(min_length=1)
    key: str = "ca.crt"


class KafkaTls(_Model):
    ca_secret_ref: CaSecretRef | None = None


class StartingOffsets(StrEnum):
    EARLIEST = "earliest"
    LATEST = "latest"


class KafkaSpec(_Model):
    strimzi_cluster: StrimziClusterRef | None = None
    bootstrap_servers: str | None = None
    topic: TopicSpec
    starting_offsets: StartingOffsets = StartingOffsets.EARLIEST
    authentication: KafkaAuthentication | None = None
    # How the job reaches the brokers, not what it reads: a restart keeps the checkpoint.
    tls: Annotated[KafkaTls | None, RESTART] = None

    def security_protocol(self) -> str:
        """The Kafka client's security.protocol: TLS with a tls section (or the older
        authentication.securityProtocol SASL_SSL), SASL with an authentication section."""
        auth = self.authentication
        tls = self.tls is not None or (
            auth is not None and auth.security_protocol is SaslSecurityProtocol.SASL_SSL
        )
        if auth is not None:
            return "SASL_SSL" if tls else "SASL_PLAINTEXT"
        return "SSL" if tls else "PLAINTEXT"

    def ca_secret(self) -> CaSecretRef | None:
        """The Secret with the brokers' CA: the tls section's, else the Strimzi cluster's own
        (Strimzi signs its listeners with the cluster CA); None means the image's trust store."""
        if self.tls is None:
            return None
        if self.tls.ca_secret_ref is not None:
            return self.tls.ca_secret_ref
        if self.strimzi_cluster is not None:
            return CaSecretRef(name=f"{self.strimzi_cluster.name}-cluster-ca-cert")
        return None


# --- postgres --------------------------------------------------------------------------------


class CnpgClusterRef(_Model):
    name: str = Field(min_length=1, max_length=50)


class PostgresSecretRef(_Model):
    name: str = Field(min_length=1)
    username_key: str = "username"
    password_key: str = "password"


class SslMode(StrEnum):
    """libpq's sslmode values (allow is left out: it is prefer's weaker twin)."""

    DISABLE = "disable"
    PREFER = "prefer"
    REQUIRE = "require"
    VERIFY_CA = "verify-ca"
    VERIFY_FULL = "verify-full"

    @property
    def verifies(self) -> bool:
        return self in (SslMode.VERIFY_CA, SslMode.VERIFY_FULL)


class PostgresTls(_Model):
    # No default: unset, it depends on where the database is (PostgresSpec.ssl_mode).
    mode: SslMode | None = None
    ca_secret_ref: CaSecretRef | None = None


class PostgresSpec(_Model):
    cnpg_cluster: CnpgClusterRef | None = None
    secret_ref: PostgresSecretRef | None = None
    host: str | None = None
    port: Port = 5432
    database: str = "app"
    schema_: str = Field(default="pagestream", alias="schema", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    # How the job reaches the database, not what it writes: a restart keeps the checkpoint.
    tls: Annotated[PostgresTls | None, RESTART] = None
    # Grants only: a restart applies them and keeps the checkpoint.
    reader_role: Annotated[str | None, RESTART] = Field(
        default=None, pattern=r"^[a-z_][a-z0-9_]{0,62}$"
    )

    def ssl_mode(self) -> SslMode:
        """The tls section's mode; unset, verify-full for a CloudNativePG cluster (which always
        serves TLS, with a certificate for its -rw service) and libpq's prefer otherwise."""
        if self.tls is not None and self.tls.mode is not None:
            return self.tls.mode
        return SslMode.VERIFY_FULL if self.cnpg_cluster is not None else SslMode.PREFER

    def ca_secret(self) -> CaSecretRef | None:
        """The Secret with the server's CA when the mode verifies one: the tls section's, else
        the CloudNativePG cluster's <name>-ca; None means the image's trust store."""
        if not self.ssl_mode().verifies:
            return None
        if self.tls is not None and self.tls.ca_secret_ref is not None:
            return self.tls.ca_secret_ref
        if self.cnpg_cluster is not None:
            return CaSecretRef(name=f"{self.cnpg_cluster.name}-ca")
        return None


# --- spark -----------------------------------------------------------------------------------


class PullPolicy(StrEnum):
    ALWAYS = "Always"
    IF_NOT_PRESENT = "IfNotPresent"
    NEVER = "Never"


class DriverSpec(_Model):
    cores: int = Field(default=1, ge=1, le=64)
    core_request: CpuQuantity | None = None
    memory: SparkMemory = "1g"
    memory_overhead: SparkMemory | None = None


class ExecutorSpec(_Model):
    # Not a scale: spark-operator resubmits the application with the new count (the scale
    # subresource sets it too).
    instances: Annotated[int, RESTART] = Field(default=1, ge=1, le=200)
    cores: int = Field(default=1, ge=1, le=64)
    core_request: CpuQuantity | None = None
    memory: SparkMemory = "1g"
    memory_overhead: SparkMemory | None = None


class TolerationOperator(StrEnum):
    EQUAL = "Equal"
    EXISTS = "Exists"


class TaintEffect(StrEnum):
    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


class Toleration(_Model):
    """corev1.Toleration's fields, with the operators and effects Kubernetes accepts and its
    rules between them (checked in :meth:`PodsSpec.problems`, as the CRD checks them in CEL)."""

    key: QualifiedName | None = None
    operator: TolerationOperator = TolerationOperator.EQUAL
    value: LabelValue | None = None
    effect: TaintEffect | None = None
    toleration_seconds: int | None = Field(default=None, ge=0)


class Affinity(_Model):
    """corev1.Affinity, passed through as written: the three kinds are objects the CRD keeps
    unvalidated (Kubernetes checks them when the driver pod is created)."""

    node_affinity: dict[str, Any] | None = None
    pod_affinity: dict[str, Any] | None = None
    pod_anti_affinity: dict[str, Any] | None = None


# Label keys the operator, Spark and the Spark operator set on the driver and executor pods:
# spec.spark.pods.labels may not set them (prefixes, then exact keys).
RESERVED_LABEL_PREFIXES = ("app.kubernetes.io/", "pagestream.dev/", "sparkoperator.k8s.io/")
RESERVED_LABELS = (
    "spark-app-name",
    "spark-app-selector",
    "spark-exec-id",
    "spark-exec-resourceprofile-id",
    "spark-role",
    "spark-version",
)
# Annotation keys the operator sets (the checkpoint location, the restart nonce).
RESERVED_ANNOTATION_PREFIXES = ("pagestream.dev/",)
# The CRD's CEL messages say the same (without the offending keys, which CEL cannot list).
RESERVED_LABELS_MESSAGE = (
    "labels under app.kubernetes.io/, pagestream.dev/ and sparkoperator.k8s.io/, and Spark's "
    "own spark-app-name, spark-app-selector, spark-exec-id, spark-exec-resourceprofile-id, "
    "spark-role and spark-version, are set by the operator, Spark and the Spark operator"
)
RESERVED_ANNOTATIONS_MESSAGE = "annotations under pagestream.dev/ are set by the operator"
TOLERATION_NO_KEY_MESSAGE = (
    "a toleration without a key must have operator Exists (it then tolerates every taint)"
)
TOLERATION_EXISTS_VALUE_MESSAGE = "a toleration with operator Exists must have no value"
TOLERATION_SECONDS_MESSAGE = "tolerationSeconds needs effect NoExecute"


class PodsSpec(_Model):
    """Where and how the driver and executor pods run; applies to both."""

    node_selector: dict[QualifiedName, LabelValue] = Field(default_factory=dict, max_length=32)
    tolerations: list[Toleration] = Field(default_factory=list, max_length=32)
    affinity: Affinity | None = None
    priority_class_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
    )
    labels: dict[QualifiedName, LabelValue] = Field(default_factory=dict, max_length=32)
    annotations: dict[QualifiedName, Annotated[str, Field(max_length=4096)]] = Field(
        default_factory=dict, max_length=32
    )

    def problems(self) -> list[str]:
        """The CRD's CEL rules for spec.spark.pods, checked again; each message names the field."""
        found = []
        taken = sorted(
            k for k in self.labels if k.startswith(RESERVED_LABEL_PREFIXES) or k in RESERVED_LABELS
        )
        if taken:
            found.append(f"spec.spark.pods.labels: {', '.join(taken)}: {RESERVED_LABELS_MESSAGE}")
        taken = sorted(k for k in self.annotations if k.startswith(RESERVED_ANNOTATION_PREFIXES))
        if taken:
            found.append(
                f"spec.spark.pods.annotations: {', '.join(taken)}: {RESERVED_ANNOTATIONS_MESSAGE}"
            )
        where = "spec.spark.pods.tolerations"
        for i, t in enumerate(self.tolerations):
            exists = t.operator is TolerationOperator.EXISTS
            if t.key is None and not exists:
                found.append(f"{where}[{i}]: {TOLERATION_NO_KEY_MESSAGE}")
            if exists and t.value:
                found.append(f"{where}[{i}]: {TOLERATION_EXISTS_VALUE_MESSAGE}")
            if t.toleration_seconds is not None and t.effect is not TaintEffect.NO_EXECUTE:
                found.append(f"{where}[{i}]: {TOLERATION_SECONDS_MESSAGE}")
        return found


class SparkSpec(_Model):
    image: str = Field(min_length=1)
    image_pull_policy: PullPolicy = PullPolicy.IF_NOT_PRESENT
    version: str = Field(default="4.2.0", pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$")
    service_account: str = "spark"
    driver: DriverSpec = DriverSpec()
    executor: ExecutorSpec = ExecutorSpec()
    pods: PodsSpec = PodsSpec()
    trigger_interval: Duration = "5 seconds"
    max_offsets_per_trigger: int = Field(default=200_000, ge=1, le=1_000_000_000)
    conf: dict[str, str] = Field(default_factory=dict)


# --- processing, checkpoint, lifecycle, monitoring -------------------------------------------


class SecretKeyRef(_Model):
    name: str = Field(min_length=1)
    key: str = "key"


# Every pipeline needs the key, whatever hashEmail says: the visitor id's daily salt is derived
# from it, and under a known key visitor ids could be recomputed from site, IP and user agent.
# Optional in the model as in the CRD's schema; problems() (the CRD's CEL rule) requires it.
HASH_KEY_REQUIRED_MESSAGE = (
    "spec.processing.pii.hashKeySecretRef is required: visitor ids are salted with this key; "
    "create a Secret with a random key and reference it"
)


KAFKA_TLS_CONTRADICTION_MESSAGE = (
    "spec.kafka.authentication.securityProtocol: SASL_PLAINTEXT contradicts spec.kafka.tls; "
    "remove securityProtocol (with spec.kafka.tls the protocol is SASL_SSL)"
)
POSTGRES_CA_UNUSED_MESSAGE = (
    "spec.postgres.tls.caSecretRef: a CA is only used to verify the server; set "
    "spec.postgres.tls.mode to verify-full (or verify-ca), or remove caSecretRef"
)


class PiiSpec(_Model):
    anonymize_ip: bool = True
    hash_email: bool = True
    hash_key_secret_ref: SecretKeyRef | None = None


class ProcessingSpec(_Model):
    watermark_delay: Duration = "2 hours"
    bot_filtering: bool = True
    report_timezone: str = "UTC"
    pii: PiiSpec = PiiSpec()


class PvcRef(_Model):
    claim_name: str = Field(min_length=1)


class CheckpointSpec(_Model):
    persistent_volume_claim: PvcRef | None = None
    uri: str | None = None


class DesiredState(StrEnum):
    RUNNING = "running"
    SUSPENDED = "suspended"


class UpgradeMode(StrEnum):
    LAST_STATE = "last-state"
    STATELESS = "stateless"


class LifecycleSpec(_Model):
    state: Annotated[DesiredState, IGNORE] = DesiredState.RUNNING
    # How the next upgrade treats the checkpoint; changing it alone restarts nothing.
    upgrade_mode: Annotated[UpgradeMode, IGNORE] = UpgradeMode.LAST_STATE
    restart_nonce: int | None = Field(default=None, ge=0)


class MonitorKind(StrEnum):
    # A PodMonitor where the cluster serves prometheus-operator's PodMonitors, else none.
    AUTO = "Auto"
    NONE = "None"
    POD_MONITOR = "PodMonitor"
    SERVICE_MONITOR = "ServiceMonitor"


class MonitoringSpec(_Model):
    metrics_port: int = Field(default=9108, ge=1024, le=65535)
    # The monitoring objects are children of their own; the job does not see them.
    monitor: Annotated[MonitorKind, IGNORE] = MonitorKind.AUTO
    monitor_labels: Annotated[dict[str, str], IGNORE] = Field(default_factory=dict)
    dashboards: Annotated[bool, IGNORE] = False


# --- retention -------------------------------------------------------------------------------

FOREVER: Literal["Forever"] = "Forever"
# What each of spec.retention's fields accepts; the CRD's CEL messages say the same after the
# field's name (the API server checks them, parse_spec repeats them).
RETENTION_DAYS_MESSAGE = (
    "must be a whole number of days of at least 1 (e.g. 90, unquoted) or the string Forever"
)
RETENTION_ROLLUPS_MESSAGE = (
    "spec.retention.rollups: must be at least spec.retention.events, and Forever when events "
    "is Forever: hour rollups count the events, so they cannot be dropped before them"
)


def _days_or_forever(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    # One message for both members of the union (pydantic would report one error per member).
    try:
        return handler(value)
    except ValidationError:
        raise ValueError(RETENTION_DAYS_MESSAGE) from None


# Strict: the CRD (x-kubernetes-int-or-string) refuses "90" and true, so the model does too.
RetentionDays = Annotated[
    Annotated[int, Field(strict=True, ge=1)] | Literal["Forever"],
    WrapValidator(_days_or_forever),
]


def _job_days(days: int | Literal["Forever"]) -> int:
    return days if isinstance(days, int) else 0


class RetentionSpec(_Model):
    """How long the job keeps what it writes, in whole UTC days (JobConfig.retention_days and
    rollup_retention_days, where 0 is Forever)."""

    # Facts, event ids and minute rollups; older events are dead-lettered as past_retention.
    events: RetentionDays = 90
    # Hour rollups and visitor days; at least as long as events.
    rollups: RetentionDays = 730

    def retention_days(self) -> int:
        """JobConfig.retention_days: days of facts, event ids and minute rollups, 0 for Forever."""
        return _job_days(self.events)

    def rollup_retention_days(self) -> int:
        """JobConfig.rollup_retention_days: days of hour and day rollups and visitor days, 0 for Forever."""
        return _job_days(self.rollups)

    def problems(self) -> list[str]:
        """The CRD's CEL rule across spec.retention's fields, checked again."""
        if isinstance(self.rollups, int) and (
            not isinstance(self.events, int) or self.rollups < self.events
        ):
            return [RETENTION_ROLLUPS_MESSAGE]
        return []


# Spark settings the operator sets itself (render.OPERATOR_SPARK_CONF puts the job's jars on the
# classpath); spec.spark.conf may not set them, nor any spark.kubernetes.* key.
RESERVED_SPARK_CONF = frozenset(
    {"spark.jars", "spark.driver.extraClassPath", "spark.executor.extraClassPath"}
)


class PipelineSpec(_Model):
    kafka: KafkaSpec
    postgres: PostgresSpec
    spark: SparkSpec
    processing: ProcessingSpec = ProcessingSpec()
    # How long the job keeps what it writes; the job reads it at start, so a change restarts
    # it, with its checkpoint.
    retention: Annotated[RetentionSpec, RESTART] = RetentionSpec()
    checkpoint: CheckpointSpec
    lifecycle: LifecycleSpec = LifecycleSpec()
    monitoring: MonitoringSpec = MonitoringSpec()

    def problems(self) -> list[str]:
        """The CRD's cross-field (CEL) rules, checked again here; each message names the field."""
        found = []
        if (self.kafka.strimzi_cluster is None) == (self.kafka.bootstrap_servers is None):
            found.append("spec.kafka: set exactly one of strimziCluster or bootstrapServers")
        if self.kafka.topic.manage and self.kafka.strimzi_cluster is None:
            found.append(
                "spec.kafka.topic.manage: a managed topic is a Strimzi KafkaTopic and needs "
                "spec.kafka.strimziCluster"
            )
        auth = self.kafka.authentication
        if (
            self.kafka.tls is not None
            and auth is not None
            and auth.security_protocol is SaslSecurityProtocol.SASL_PLAINTEXT
        ):
            found.append(KAFKA_TLS_CONTRADICTION_MESSAGE)
        pg_tls = self.postgres.tls
        if (
            pg_tls is not None
            and pg_tls.ca_secret_ref is not None
            and not self.postgres.ssl_mode().verifies
        ):
            found.append(POSTGRES_CA_UNUSED_MESSAGE)
        if (self.postgres.cnpg_cluster is None) == (self.postgres.secret_ref is None):
            found.append("spec.postgres: set exactly one of cnpgCluster or secretRef")
        if self.postgres.cnpg_cluster is None and not self.postgres.host:
            found.append("spec.postgres.host is required with spec.postgres.secretRef")
        if self.processing.pii.hash_key_secret_ref is None:
            found.append(HASH_KEY_REQUIRED_MESSAGE)
        if (self.checkpoint.persistent_volume_claim is None) == (self.checkpoint.uri is None):
            found.append("spec.checkpoint: set exactly one of persistentVolumeClaim or uri")
        reserved = [
            k
            for k in self.spark.conf
            if k in RESERVED_SPARK_CONF or k.startswith("spark.kubernetes.")
        ]
        if reserved:
            found.append(f"spec.spark.conf: {', '.join(sorted(reserved))} are set by the operator")
        found += self.spark.pods.problems()
        found += self.retention.problems()
        return found


def parse_spec(raw: dict[str, Any]) -> PipelineSpec:
    """Parse and check a pipeline's spec; :class:`SpecError` names every problem."""
    try:
        spec = PipelineSpec.model_validate(raw)
    except ValidationError as exc:
        messages = []
        for err in exc.errors():
            where = ".".join(str(p) for p in ("spec", *err["loc"]))
            # A validator's ValueError in its own words, without pydantic's "Value error, ".
            error = err.get("ctx", {}).get("error") if err["type"] == "value_error" else None
            messages.append(f"{where}: {error if error is not None else err['msg']}")
        raise SpecError("; ".join(messages)) from exc
    problems = spec.problems()
    if problems:
        raise SpecError("; ".join(problems))
    return spec
