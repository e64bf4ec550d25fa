"""The embedded platform: one pipeline, its servers, its traffic and its streaming job on this
machine, started from a PageAnalyticsPipeline YAML and stopped without losing anything.

State lives in ``<state>/platform.json`` (which pipeline runs, from which file) and
``<state>/pipelines/<name>/`` (ports, secrets, checkpoint, simulator manifests). The servers are
the local stack's; the simulator and the job are two more supervised processes.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pagestream.local.pipeline import LocalPipeline, LocalPlaces, load_pipeline, localize
from pagestream.stack.errors import StackError
from pagestream.stack.paths import REPO_ROOT, StackPaths
from pagestream.stack.process import ManagedProcess, free_port, tail
from pagestream.stack.spark import job_environment
from pagestream.stack.stack import DEFAULT_COMPONENTS, LocalStack
from pagestream_common.jobconfig import SECRET_ENV, JobConfig

log = logging.getLogger(__name__)

DEFAULT_PIPELINE_FILE = REPO_ROOT / "manifests" / "local" / "page-views.yaml"
JOB_SCRAPE_JOB = "pagestream-job"
SIMULATOR_SCRAPE_JOB = "pagestream-simulator"
# The driver drains its current micro-batch on SIGTERM; a large batch on a busy machine can take
# a while, and killing it early would only make the next start redo the batch.
JOB_STOP_TIMEOUT = 180.0


def ensure_pii_key(path: Path) -> Path:
    """``path`` holding a random PII key: kept when it holds one, made (owner-only) when it is
    missing or empty, since the job refuses an empty key. Returns ``path``."""
    if not path.exists() or not path.read_text().strip():
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(secrets.token_hex(32))
    return path


@dataclass(frozen=True)
class TrafficSettings:
    """The simulator's pace and injected faults (shares of events)."""

    rate: float = 50.0
    events: int | None = None  # None: until `down`
    duplicate_rate: float = 0.01
    malformed_rate: float = 0.01
    late_rate: float = 0.01
    bot_share: float = 0.05


@dataclass
class PipelineState:
    """What a pipeline keeps between runs: its ports and how many simulator runs it has had
    (each run gets its own seed, so no two runs send the same event ids)."""

    job_metrics_port: int
    simulator_metrics_port: int
    simulator_runs: int = 0

    @classmethod
    def load_or_create(cls, path: Path) -> PipelineState:
        try:
            return cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            state = cls(job_metrics_port=free_port(), simulator_metrics_port=free_port())
            state.save(path)
            return state

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")


class LocalPlatform:
    def __init__(self, paths: StackPaths) -> None:
        self.paths = paths
        self.stack = LocalStack(paths)

    # --- where things are --------------------------------------------------------------------

    @property
    def platform_file(self) -> Path:
        return self.paths.state / "platform.json"

    def pipeline_dir(self, name: str) -> Path:
        return self.paths.state / "pipelines" / name

    def current(self) -> LocalPipeline | None:
        """The pipeline last brought up here (until `down --forget`), re-read from its file."""
        try:
            source = Path(json.loads(self.platform_file.read_text())["source"])
        except FileNotFoundError:
            return None
        return load_pipeline(source)

    def job_process(self, name: str) -> ManagedProcess:
        # SIGTERM to the Python driver alone: it stops the query between batches, then Spark.
        return ManagedProcess(
            f"job {name}",
            self.pipeline_dir(name) / "job.pid",
            self.paths.logs / f"job-{name}.log",
            signal_group=False,
            tied=self.paths.tied,
        )

    def simulator_process(self, name: str) -> ManagedProcess:
        return ManagedProcess(
            f"simulator {name}",
            self.pipeline_dir(name) / "simulator.pid",
            self.paths.logs / f"simulator-{name}.log",
            tied=self.paths.tied,
        )

    def state(self, name: str) -> PipelineState:
        return PipelineState.load_or_create(self.pipeline_dir(name) / "ports.json")

    def job_config(self, pipeline: LocalPipeline) -> JobConfig:
        postgres = self.stack.postgres()
        return localize(
            pipeline,
            LocalPlaces(
                kafka_bootstrap_servers=self.stack.kafka().bootstrap_servers,
                postgres_host="127.0.0.1",
                postgres_port=postgres.port,
                checkpoint_location=str(self.pipeline_dir(pipeline.name) / "checkpoint"),
                metrics_port=self.state(pipeline.name).job_metrics_port,
            ),
        )

    # --- up ----------------------------------------------------------------------------------

    def up(
        self,
        pipeline: LocalPipeline,
        traffic: TrafficSettings,
        *,
        progress: Callable[[str], None],
        first_batch_timeout: float = 300.0,
    ) -> JobConfig:
        running = self.current()
        if running is not None and running.name != pipeline.name and self._job_running(running):
            raise StackError(
                f"pipeline {running.name!r} ({running.source}) is running here",
                hint="stop it first with `pagestream down`",
            )
        if self._job_running(pipeline):
            # A running job means a running platform: leave it (and its traffic) as it is.
            progress(f"pipeline {pipeline.name!r} is already running; nothing to do")
            if not self.simulator_process(pipeline.name).running():
                progress(
                    "the simulator has stopped (it sent its --events); to send more, "
                    "`pagestream down` then `pagestream up`"
                )
            return self.job_config(pipeline)

        progress("starting Kafka, PostgreSQL and Prometheus (the first start takes a minute)")
        self.stack.up(DEFAULT_COMPONENTS)
        self.platform_file.write_text(
            json.dumps({"name": pipeline.name, "source": str(pipeline.source.resolve())}) + "\n"
        )
        config = self.job_config(pipeline)
        progress(f"creating topic {config.kafka_topic!r} and database {config.postgres_database!r}")
        self._create_topic(config, pipeline.spec.kafka.topic.partitions)
        self._create_database(config.postgres_database)

        commits_before = self._committed_batches(config)
        self._start_job(pipeline, config)
        self._start_simulator(pipeline, config, traffic)
        self.stack.prometheus().set_targets(
            JOB_SCRAPE_JOB,
            [f"127.0.0.1:{config.metrics_port}"],
            {"pipeline": pipeline.name},
        )
        progress("waiting for the streaming job's first committed batch (Spark starts in ~30 s)")
        self._wait_for_commit(pipeline, config, commits_before, first_batch_timeout)
        return config

    def _job_running(self, pipeline: LocalPipeline) -> bool:
        return self.job_process(pipeline.name).running()

    def _create_topic(self, config: JobConfig, partitions: int) -> None:
        self.stack.kafka().ensure_topic(config.kafka_topic, partitions)

    def _create_database(self, database: str) -> None:
        import psycopg2
        from psycopg2 import sql

        conn = psycopg2.connect(self.stack.postgres().dsn("postgres"))
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
                if cur.fetchone() is None:
                    cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        finally:
            conn.close()

    def _secret_files(self, pipeline: LocalPipeline) -> dict[str, str]:
        """The job's secrets as <VAR>_FILE variables: values stay out of process listings. The
        PII key (the pipeline's hashKeySecretRef, which a local run does not read from a
        Secret) is made once per pipeline and kept, so hashes and visitor ids stay comparable
        across restarts."""
        secret_dir = self.pipeline_dir(pipeline.name) / "secrets"
        secret_dir.mkdir(parents=True, exist_ok=True)
        secret_dir.chmod(0o700)
        hash_key = ensure_pii_key(secret_dir / "pii-hash-key")
        return {
            SECRET_ENV["postgres_user"]: "postgres",
            f"{SECRET_ENV['postgres_password']}_FILE": str(self.stack.postgres().password_file),
            f"{SECRET_ENV['pii_hash_key']}_FILE": str(hash_key),
        }

    def _start_job(self, pipeline: LocalPipeline, config: JobConfig) -> None:
        spark = pipeline.spec.spark
        # Local mode runs the executors' work in the driver's JVM: as many task slots as the
        # pipeline asks executors for, within what this machine has.
        cores = max(1, min(os.cpu_count() or 1, spark.executor.instances * spark.executor.cores))
        env = {
            **os.environ,
            **job_environment(self.paths, cores=cores, driver_memory=spark.driver.memory),
            **self._secret_files(pipeline),
        }
        self.job_process(pipeline.name).start(
            [sys.executable, "-m", "pagestream_spark.main", *config.to_args()],
            env=env,
            cwd=self.pipeline_dir(pipeline.name),
        )

    def _start_simulator(
        self, pipeline: LocalPipeline, config: JobConfig, traffic: TrafficSettings
    ) -> None:
        process = self.simulator_process(pipeline.name)
        if process.running():
            return
        state = self.state(pipeline.name)
        state.simulator_runs += 1
        state.save(self.pipeline_dir(pipeline.name) / "ports.json")
        manifest = (
            self.pipeline_dir(pipeline.name) / "simulator" / f"run-{state.simulator_runs:04d}.json"
        )
        manifest.parent.mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable,
            "-m",
            "pagestream_simulator.cli",
            f"--bootstrap-servers={config.kafka_bootstrap_servers}",
            f"--topic={config.kafka_topic}",
            f"--rate={traffic.rate}",
            f"--seed={state.simulator_runs}",
            f"--duplicate-rate={traffic.duplicate_rate}",
            f"--malformed-rate={traffic.malformed_rate}",
            f"--late-rate={traffic.late_rate}",
            f"--bot-share={traffic.bot_share}",
            f"--manifest={manifest}",
            f"--metrics-port={state.simulator_metrics_port}",
            "--metrics-addr=127.0.0.1",
            "--no-progress",
        ]
        if traffic.events is not None:
            argv.append(f"--count={traffic.events}")
        process.start(argv, cwd=self.pipeline_dir(pipeline.name))
        self.stack.prometheus().set_targets(
            SIMULATOR_SCRAPE_JOB,
            [f"127.0.0.1:{state.simulator_metrics_port}"],
            {"pipeline": pipeline.name},
        )

    def _committed_batches(self, config: JobConfig) -> int:
        import psycopg2
        from psycopg2 import sql

        try:
            conn = psycopg2.connect(self.stack.postgres().dsn(config.postgres_database))
        except psycopg2.OperationalError:
            return 0
        try:
            with conn.cursor() as cur:
                cur.execute(
                    sql.SQL("SELECT count(*) FROM {}.batch_commits").format(
                        sql.Identifier(config.postgres_schema)
                    )
                )
                row = cur.fetchone()
                assert row is not None  # an aggregate without GROUP BY returns one row
                return int(row[0])
        except psycopg2.Error:
            return 0  # not migrated yet: the job creates its tables when it starts
        finally:
            conn.close()

    def _wait_for_commit(
        self, pipeline: LocalPipeline, config: JobConfig, before: int, timeout: float
    ) -> None:
        job = self.job_process(pipeline.name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not job.running():
                raise StackError(
                    f"the streaming job exited during start-up:\n{tail(job.log_file, 15)}",
                    log=str(job.log_file),
                    hint="fix what the log says, then run `pagestream up` again",
                )
            if self._committed_batches(config) > before:
                return
            time.sleep(1.0)
        raise StackError(
            f"the streaming job committed no batch within {timeout:.0f}s",
            log=str(job.log_file),
            hint="it keeps running; watch `pagestream status`, or `pagestream down` to stop",
        )

    # --- down --------------------------------------------------------------------------------

    def down(self, *, progress: Callable[[str], None]) -> None:
        """Traffic first, then the job (it finishes its batch: nothing is half-written), then
        the servers. Ports, secrets and the checkpoint stay, so `up` resumes."""
        pipeline_dirs = sorted((self.paths.state / "pipelines").glob("*/"))
        for directory in pipeline_dirs:
            simulator = self.simulator_process(directory.name)
            if simulator.running():
                progress(f"stopping the simulator of {directory.name!r}")
            simulator.stop(timeout=60)
        for directory in pipeline_dirs:
            job = self.job_process(directory.name)
            if job.running():
                progress(f"stopping the streaming job of {directory.name!r} after its batch")
            job.stop(timeout=JOB_STOP_TIMEOUT)
        if self.stack.known():
            prometheus = self.stack.prometheus()
            prometheus.set_targets(JOB_SCRAPE_JOB, [])
            prometheus.set_targets(SIMULATOR_SCRAPE_JOB, [])
        progress("stopping Prometheus, PostgreSQL and Kafka")
        self.stack.down()


def where(platform: LocalPlatform, config: JobConfig, pipeline: LocalPipeline) -> dict[str, Any]:
    """Everything a user may want to open, by name."""
    stack = platform.stack
    return {
        "pipeline": f"{pipeline.name} ({pipeline.source})",
        "kafka": f"{stack.kafka().bootstrap_servers}  topic {config.kafka_topic}",
        # No password on screen: `pagestream stack env` prints the full URL when wanted.
        "postgres": f"postgresql://postgres@127.0.0.1:{stack.postgres().port}/"
        f"{config.postgres_database}  schema {config.postgres_schema}",
        "prometheus": stack.prometheus().url,
        "job metrics": f"http://127.0.0.1:{config.metrics_port}/metrics",
        "simulator metrics": "http://127.0.0.1:"
        f"{platform.state(pipeline.name).simulator_metrics_port}/metrics",
        "checkpoint": config.checkpoint_location,
        "logs": str(platform.paths.logs),
    }
