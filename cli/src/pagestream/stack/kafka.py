"""A single-node Apache Kafka 4.x broker in KRaft mode (combined broker + controller)."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from pagestream.stack.artifacts import classpath, maven_jars
from pagestream.stack.errors import StackError
from pagestream.stack.paths import StackPaths
from pagestream.stack.pki import ServerTls
from pagestream.stack.process import ManagedProcess, port_open, wait_until

LOG4J2_CONFIG = """\
Configuration:
  status: warn
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        Pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.request.logger
        level: WARN
      - name: org.apache.kafka.controller
        level: INFO
      - name: state.change.logger
        level: WARN
"""


def java_binary() -> str:
    java = shutil.which("java")
    if not java:
        raise StackError(
            "`java` is not on PATH", hint="Kafka 4.x needs Java 17+: install openjdk-17"
        )
    return java


def kraft_server_properties(
    *,
    host: str,
    plaintext_port: int,
    controller_port: int,
    data_dir: str,
    sasl_port: int | None = None,
    advertised_sasl_host: str | None = None,
    tls: TlsListeners | None = None,
) -> str:
    """A single-node combined broker + controller. Inter-broker traffic uses the PLAINTEXT
    listener on ``host``; with ``sasl_port``, a SASL_PLAINTEXT listener (SCRAM-SHA-512, as a
    Strimzi KafkaUser) listens on all addresses and is advertised as ``advertised_sasl_host``
    (a Service's name in a cluster; ``host`` by default). With ``tls``, an SSL and a SASL_SSL
    listener on ``host``, advertised by the name their certificate carries."""
    listeners = [f"PLAINTEXT://{host}:{plaintext_port}"]
    advertised = list(listeners)
    protocols = "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    # SASL and TLS settings of the listeners beyond PLAINTEXT.
    security: list[str] = []
    if sasl_port is not None:
        bind = host if advertised_sasl_host is None else "0.0.0.0"
        listeners.append(f"SASL_PLAINTEXT://{bind}:{sasl_port}")
        advertised.append(f"SASL_PLAINTEXT://{advertised_sasl_host or host}:{sasl_port}")
        protocols += ",SASL_PLAINTEXT:SASL_PLAINTEXT"
    if tls is not None:
        for name, port in (("SSL", tls.ssl_port), ("SASL_SSL", tls.sasl_ssl_port)):
            listeners.append(f"{name}://{host}:{port}")
            advertised.append(f"{name}://{tls.advertised_host}:{port}")
            protocols += f",{name}:{name}"
        security += [
            # Kafka reads PEM itself: one file with the private key and the certificate chain.
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={tls.keystore_file}",
        ]
    if sasl_port is not None or tls is not None:
        security.append("sasl.enabled.mechanisms=SCRAM-SHA-512")
        security += [
            f"listener.name.{name}.scram-sha-512.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            for name, on in (
                ("sasl_plaintext", sasl_port is not None),
                ("sasl_ssl", tls is not None),
            )
            if on
        ]
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@{host}:{controller_port}",
            f"listeners={','.join(listeners)},CONTROLLER://{host}:{controller_port}",
            f"advertised.listeners={','.join(advertised)}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            f"listener.security.protocol.map={protocols}",
            *security,
            f"log.dirs={data_dir}",
            "num.partitions=1",
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
            # Big enough for the benchmark backlogs, small enough for a laptop disk.
            "log.retention.bytes=8589934592",
            "log.segment.bytes=268435456",
            "",
        ]
    )


@dataclass(frozen=True)
class TlsListeners:
    """An SSL and a SASL_SSL listener serving ``keystore_file`` (PEM: private key, then the
    certificate), advertised as ``advertised_host``: the name the certificate carries, so a
    client that verifies host names accepts the broker it is sent to."""

    ssl_port: int
    sasl_ssl_port: int
    keystore_file: Path
    advertised_host: str = "localhost"


@dataclass
class Kafka:
    paths: StackPaths
    port: int
    controller_port: int
    heap: str = "512m"
    # An extra SASL_PLAINTEXT listener on this port, authenticating the users in scram_users
    # (name -> password) with SCRAM-SHA-512, as a Strimzi KafkaUser does. Credentials are
    # written when the storage is formatted, so they apply to a fresh data folder only.
    sasl_port: int | None = None
    scram_users: dict[str, str] = field(default_factory=dict)
    # SSL and SASL_SSL listeners (the SCRAM users above on the latter) with this certificate.
    tls: ServerTls | None = None
    ssl_port: int | None = None
    sasl_ssl_port: int | None = None

    @property
    def home(self) -> Path:
        return self.paths.component_dir("kafka")

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess(
            "kafka", self.home / "kafka.pid", self.paths.logs / "kafka.log", tied=self.paths.tied
        )

    def ensure_installed(self) -> Path:
        return maven_jars(self.paths.cache, "kafka")

    @property
    def sasl_bootstrap_servers(self) -> str:
        if self.sasl_port is None:
            raise StackError("this Kafka broker has no SASL listener")
        return f"127.0.0.1:{self.sasl_port}"

    def tls_bootstrap_servers(self, *, sasl: bool = False, host: str = "localhost") -> str:
        """The SSL (or SASL_SSL) listener, by ``host``: the certificate's name by default."""
        port = self.sasl_ssl_port if sasl else self.ssl_port
        if self.tls is None or port is None:
            raise StackError("this Kafka broker has no TLS listeners")
        return f"{host}:{port}"

    def _tls_listeners(self) -> TlsListeners | None:
        if self.tls is None:
            return None
        if self.ssl_port is None or self.sasl_ssl_port is None:
            raise StackError("a Kafka broker with tls needs ssl_port and sasl_ssl_port")
        return TlsListeners(self.ssl_port, self.sasl_ssl_port, self.home / "server.pem")

    def server_properties(self) -> str:
        return kraft_server_properties(
            host="127.0.0.1",
            plaintext_port=self.port,
            controller_port=self.controller_port,
            sasl_port=self.sasl_port,
            data_dir=str(self.home / "data"),
            tls=self._tls_listeners(),
        )

    def _java(self, jars: Path, main: str, *args: str) -> list[str]:
        cp = ":".join(str(j) for j in classpath(jars))
        return [
            java_binary(),
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.yaml'}",
            f"-Dkafka.logs.dir={self.paths.logs}",
            "-cp",
            cp,
            main,
            *args,
        ]

    def start(self, *, timeout: float = 90.0) -> None:
        jars = self.ensure_installed()
        self.home.mkdir(parents=True, exist_ok=True)
        config = self.home / "server.properties"
        config.write_text(self.server_properties())
        if self.tls is not None:
            keystore = self.home / "server.pem"
            keystore.write_bytes(self.tls.key_file.read_bytes() + self.tls.cert_file.read_bytes())
            keystore.chmod(0o600)
        (self.home / "log4j2.yaml").write_text(LOG4J2_CONFIG)
        if not (self.home / "data" / "meta.properties").exists():
            cluster_id = _kafka_uuid()
            proc = subprocess.run(
                self._java(
                    jars,
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    cluster_id,
                    "-c",
                    str(config),
                    *(
                        arg
                        for name, password in self.scram_users.items()
                        for arg in (
                            "--add-scram",
                            f"SCRAM-SHA-512=[name={name},password={password}]",
                        )
                    ),
                ),
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                raise StackError(f"formatting Kafka storage failed:\n{proc.stdout}{proc.stderr}")
        proc_ = self.process
        proc_.start(self._java(jars, "kafka.Kafka", str(config)))
        wait_until(
            self.healthy,
            timeout=timeout,
            what=f"Kafka broker on {self.bootstrap_servers}",
            alive=proc_.running,
            log_path=proc_.log_file,
            interval=0.5,
        )

    def running(self) -> bool:
        return self.process.running()

    def healthy(self) -> bool:
        if not port_open(self.port):
            return False
        # The port opens before the broker has joined its own quorum; metadata proves it serves.
        from confluent_kafka.admin import AdminClient

        try:
            md = AdminClient({"bootstrap.servers": self.bootstrap_servers}).list_topics(timeout=2)
        except Exception:
            return False
        return bool(md.brokers)

    def ensure_topic(self, name: str, partitions: int, timeout: float = 30) -> bool:
        """Create ``name`` on this broker unless it exists; True if it was created."""
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import AdminClient, NewTopic

        # log_level 4: librdkafka's informational chatter on shutdown is not for the terminal.
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 4})
        future = admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1)]
        )[name]
        try:
            future.result(timeout)
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                return False
            raise StackError(f"cannot create topic {name}: {exc}") from exc
        return True

    def stop(self) -> None:
        # A controlled shutdown moves leadership and flushes logs; give it time before SIGKILL.
        self.process.stop(timeout=60)


def _kafka_uuid() -> str:
    """Kafka cluster ids are 16 random bytes in URL-safe base64 without padding. Like Kafka's
    own Uuid.randomUuid, never one starting with '-', which the storage tool would read as an
    option."""
    import base64

    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text
