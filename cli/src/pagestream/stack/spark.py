"""Spark in local mode with the Kafka connector and JDBC driver fetched ahead of time."""

from __future__ import annotations

from pathlib import Path

from pagestream.stack.artifacts import classpath, maven_jars
from pagestream.stack.paths import StackPaths


def spark_connector_jars(paths: StackPaths) -> list[Path]:
    """The jars handed to ``spark.jars``: nothing is resolved from a repository at run time."""
    return classpath(maven_jars(paths.cache, "spark"))


def local_spark_conf(
    paths: StackPaths, *, cores: int = 2, driver_memory: str = "2g"
) -> dict[str, str]:
    scratch = paths.component_dir("spark")
    return {
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


def local_spark_session(paths: StackPaths, app_name: str, **conf_overrides: str):  # type: ignore[no-untyped-def]
    """A local SparkSession wired to the pre-fetched jars (pyspark is imported lazily: it is
    heavy, and most CLI commands never need it)."""
    import logging
    import os

    from pyspark.sql import SparkSession

    # Read by Spark's launcher before any conf: without it Spark binds to the first non-loopback
    # interface and warns that the hostname resolves to loopback.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    builder = SparkSession.builder.appName(app_name)
    for key, value in (local_spark_conf(paths) | conf_overrides).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def job_environment(
    paths: StackPaths, *, cores: int = 2, driver_memory: str = "2g"
) -> dict[str, str]:
    """Environment that makes ``python -m pagestream_spark.main`` start Spark in local mode with
    the pre-fetched jars (pyspark reads PYSPARK_SUBMIT_ARGS when it launches its JVM)."""
    import shlex

    conf = local_spark_conf(paths, cores=cores, driver_memory=driver_memory)
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
    }
