"""Spark in local mode with the Kafka connector and JDBC driver fetched ahead of time, and a
class-data archive of the driver JVM so it starts faster."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from pagestream.stack.artifacts import classpath, maven_jars
from pagestream.stack.errors import StackError
from pagestream.stack.paths import StackPaths

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import SparkSession


def spark_connector_jars(paths: StackPaths) -> list[Path]:
    """The jars handed to ``spark.jars``: nothing is resolved from a repository at run time."""
    return classpath(maven_jars(paths.cache, "spark"))


def _pyspark_jars() -> Path:
    # Found without importing pyspark: this runs in every CLI command that starts a job.
    spec = importlib.util.find_spec("pyspark")
    return Path(spec.origin).parent / "jars" if spec and spec.origin else Path("jars")


def class_archive_path(paths: StackPaths) -> Path:
    """Where the driver JVM's class-data (AppCDS) archive lives, keyed by what it depends on:
    the Java runtime and the jars pyspark puts on the classpath, by absolute path, size and
    modification time. The JVM refuses an archive whose recorded classpath entries are not
    where, or not what, they were when it dumped them ("top archive failed to load"): another
    checkout's virtualenv, or this one's synced anew, has an archive of its own; another key
    means another file, so a stale archive is never offered to a JVM."""
    jars = _pyspark_jars()
    java = Path(os.path.realpath(shutil.which("java") or "java"))
    key = "\n".join(
        [
            str(java),
            _size_and_mtime(java),
            str(jars.resolve()),
            *(f"{jar.name} {_size_and_mtime(jar)}" for jar in sorted(jars.glob("*.jar"))),
        ]
    )
    return paths.cache / "spark-cds" / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.jsa"


def _size_and_mtime(path: Path) -> str:
    try:
        stat = path.stat()
    except OSError:
        return ""
    return f"{stat.st_size}:{stat.st_mtime_ns}"


# Beside each archive: the jars folder its classpath was dumped from.
_ARCHIVE_SOURCE_SUFFIX = ".jars"


def prune_class_archives(folder: Path, keep: Path, jars: Path) -> list[Path]:
    """Delete the archives (150 MB each) that no JVM will load again: those of ``jars`` (this
    checkout's pyspark jars folder) other than ``keep``, dumped before its jars were reinstalled,
    and those whose jars folder is gone (a deleted clone) or unrecorded. Other live checkouts'
    archives stay. Returns the deleted ones."""
    removed = []
    for archive in sorted(folder.glob("*.jsa")):
        source = archive.with_name(archive.name + _ARCHIVE_SOURCE_SUFFIX)
        try:
            recorded = Path(source.read_text().strip())
            stale = recorded == jars.resolve() or not recorded.is_dir()
        except OSError:
            stale = True
        if archive != keep and stale:
            archive.unlink(missing_ok=True)
            source.unlink(missing_ok=True)
            removed.append(archive)
    return removed


def class_archive_options(paths: StackPaths) -> dict[str, str]:
    """The driver JVM maps its classes from the archive when there is one, instead of loading,
    verifying and linking them one by one: ~5 s less JVM CPU per job start on this 2-core
    machine (docs/streaming-job.md, Performance)."""
    archive = class_archive_path(paths)
    if not archive.exists():
        return {}
    return {"spark.driver.extraJavaOptions": f"-XX:SharedArchiveFile={archive}"}


def job_tmpdir(paths: StackPaths) -> Path:
    """Where a local Spark job's own temporary files go: the JVM's (spark-submit's staging
    directory, the artifact root, lz4-java's extracted native library), which
    ``spark.local.dir`` does not cover, and Python's (pyspark's gateway handshake directory).
    A job killed rather than stopped leaves them behind; under the stack's state they go when
    the stack does."""
    return paths.component_dir("spark") / "job-tmp"


def java_tmpdir_option(paths: StackPaths) -> str:
    return f"-Djava.io.tmpdir={job_tmpdir(paths)}"


def local_spark_conf(
    paths: StackPaths,
    *,
    cores: int = 2,
    driver_memory: str = "2g",
    driver_java_options: tuple[str, ...] = (),
) -> dict[str, str]:
    """``driver_java_options``: more JVM flags for the driver (a benchmark's profiler, say),
    after the class-data archive's and the temporary directory's."""
    scratch = paths.component_dir("spark")
    java_options = " ".join(
        [
            *class_archive_options(paths).values(),
            java_tmpdir_option(paths),
            *driver_java_options,
        ]
    )
    return {
        "spark.driver.extraJavaOptions": java_options,
        "spark.master": f"local[{cores}]",
        "spark.driver.memory": driver_memory,
        "spark.jars": ",".join(str(j) for j in spark_connector_jars(paths)),
        "spark.local.dir": str(scratch / "tmp"),
        "spark.sql.warehouse.dir": str(scratch / "warehouse"),
        "spark.sql.shuffle.partitions": str(cores * 2),
        "spark.ui.enabled": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
    }


def local_spark_session(paths: StackPaths, app_name: str, **conf_overrides: str) -> SparkSession:
    """A local SparkSession wired to the pre-fetched jars (pyspark is imported lazily: it is
    heavy, and most CLI commands never need it)."""
    import logging
    import os

    from pyspark.sql import SparkSession

    # Read by Spark's launcher before any conf: without it Spark binds to the first non-loopback
    # interface and warns that the hostname resolves to loopback.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    job_tmpdir(paths).mkdir(parents=True, exist_ok=True)
    builder = SparkSession.builder.appName(app_name)
    for key, value in (local_spark_conf(paths) | conf_overrides).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def job_environment(
    paths: StackPaths,
    *,
    cores: int = 2,
    driver_memory: str = "2g",
    driver_java_options: tuple[str, ...] = (),
) -> dict[str, str]:
    """Environment that makes ``python -m pagestream_spark.main`` start Spark in local mode with
    the pre-fetched jars (pyspark reads PYSPARK_SUBMIT_ARGS when it launches its JVM). Creates
    the job's temporary directory, which must exist before the job starts."""
    import shlex

    job_tmpdir(paths).mkdir(parents=True, exist_ok=True)

    conf = local_spark_conf(
        paths, cores=cores, driver_memory=driver_memory, driver_java_options=driver_java_options
    )
    args = [
        "--master",
        conf.pop("spark.master"),
        "--driver-memory",
        conf.pop("spark.driver.memory"),
        "--jars",
        conf.pop("spark.jars"),
    ]
    for key, value in conf.items():
        args += ["--conf", f"{key}={value}"]
    return {
        "PYSPARK_SUBMIT_ARGS": shlex.join([*args, "pyspark-shell"]),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "TMPDIR": str(job_tmpdir(paths)),
    }


def build_class_archive(paths: StackPaths) -> Path:
    """Create the driver JVM's class-data archive unless it exists: a short local Spark run
    exercising what the job uses (a Python pass over Arrow, a collect to Arrow, a streaming
    query with foreachBatch), dumped when its JVM exits. Written aside and renamed, so a
    half-written archive is never used."""
    archive = class_archive_path(paths)
    if archive.exists():
        return archive
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(f"{archive.stem}.{os.getpid()}.partial")
    run = subprocess.run(
        [sys.executable, "-m", "pagestream.stack.spark", str(paths.cache), str(partial)],
        env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"},
        capture_output=True,
        text=True,
        check=False,
    )
    if run.returncode != 0 or not partial.exists():
        partial.unlink(missing_ok=True)
        raise StackError(
            f"building the Spark class-data archive failed (exit {run.returncode}):\n"
            + "\n".join((run.stdout + run.stderr).splitlines()[-30:]),
            hint="the job still runs without it, only slower to start; fix the error and rerun "
            "`uv run pagestream install`",
        )
    jars = _pyspark_jars()
    archive.with_name(archive.name + _ARCHIVE_SOURCE_SUFFIX).write_text(f"{jars.resolve()}\n")
    partial.replace(archive)
    prune_class_archives(archive.parent, keep=archive, jars=jars)
    return archive


def _exercise_and_dump(cache: Path, partial: Path) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as state:
        paths = StackPaths(cache=cache, state=Path(state))
        # Signed jars and old class files are left out of the archive, one warning each. These
        # options replace the driver's rather than add to them: a JVM that maps an existing
        # archive refuses to dump a new one ("DynamicDumpSharedSpaces is unsupported").
        java_options = (
            f"{java_tmpdir_option(paths)} -XX:ArchiveClassesAtExit={partial} -Xlog:cds=error"
        )
        spark = local_spark_session(
            paths, "pagestream-class-archive", **{"spark.driver.extraJavaOptions": java_options}
        )

        def passthrough(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            yield from batches

        spark.range(1000).mapInArrow(passthrough, "id long").toArrow()
        query = (
            spark.readStream.format("rate")
            .option("rowsPerSecond", 100)
            .load()
            .writeStream.foreachBatch(lambda df, _: df.toArrow())
            .option("checkpointLocation", str(Path(state) / "checkpoint"))
            .trigger(availableNow=True)
            .start()
        )
        query.awaitTermination(120)
        # The gateway is a class attribute, None until a SparkContext starts; this one has.
        gateway = spark.sparkContext._gateway
        assert gateway is not None
        jvm = gateway.proc
        spark.stop()
        # The JVM exits when its stdin closes, and writes the archive on the way out.
        jvm.stdin.close()
        jvm.wait(timeout=300)


if __name__ == "__main__":
    _exercise_and_dump(Path(sys.argv[1]), Path(sys.argv[2]))
