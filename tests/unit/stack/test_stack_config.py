"""Pure pieces of the local stack: generated configs, cache keys, build flags, the CLI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pagestream.cli import build_parser
from pagestream.stack import spark as spark_module
from pagestream.stack.artifacts import HELM_TOOLS, K8S_TOOLS
from pagestream.stack.kafka import Kafka, _kafka_uuid
from pagestream.stack.paths import StackPaths, content_key
from pagestream.stack.prometheus import Prometheus
from pagestream.stack.spark import (
    class_archive_options,
    class_archive_path,
    job_environment,
    local_spark_conf,
    prune_class_archives,
)


@pytest.fixture
def paths(tmp_path: Path) -> StackPaths:
    return StackPaths(cache=tmp_path / "cache", state=tmp_path / "state")


def test_kafka_config_is_a_single_kraft_node_on_loopback(paths: StackPaths) -> None:
    props = dict(
        line.split("=", 1)
        for line in Kafka(paths, port=19092, controller_port=19093).server_properties().splitlines()
        if line
    )
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["log.dirs"] == str(paths.state / "kafka" / "data")
    for key in ("offsets.topic.replication.factor", "transaction.state.log.replication.factor"):
        assert props[key] == "1"


def test_kafka_sasl_listener_authenticates_with_scram(paths: StackPaths) -> None:
    kafka = Kafka(paths, port=19092, controller_port=19093, sasl_port=19094)
    props = dict(line.split("=", 1) for line in kafka.server_properties().splitlines() if line)
    assert props["listeners"] == (
        "PLAINTEXT://127.0.0.1:19092,SASL_PLAINTEXT://127.0.0.1:19094,CONTROLLER://127.0.0.1:19093"
    )
    assert "SASL_PLAINTEXT:SASL_PLAINTEXT" in props["listener.security.protocol.map"]
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert kafka.sasl_bootstrap_servers == "127.0.0.1:19094"


def test_the_driver_uses_the_class_archive_only_once_it_exists(paths: StackPaths) -> None:
    archive = class_archive_path(paths)
    assert archive.parent == paths.cache / "spark-cds"
    assert class_archive_options(paths) == {}
    archive.parent.mkdir(parents=True)
    archive.write_bytes(b"")
    assert class_archive_options(paths) == {
        "spark.driver.extraJavaOptions": f"-XX:SharedArchiveFile={archive}"
    }


def test_the_driver_jvm_keeps_its_temporary_files_under_the_stack_state(paths: StackPaths) -> None:
    archive = class_archive_path(paths)
    archive.parent.mkdir(parents=True)
    archive.write_bytes(b"")
    conf = local_spark_conf(paths, driver_java_options=("-XX:+FlightRecorder",))
    tmpdir = paths.state / "spark" / "job-tmp"
    assert conf["spark.driver.extraJavaOptions"].split() == [
        f"-XX:SharedArchiveFile={archive}",
        f"-Djava.io.tmpdir={tmpdir}",
        "-XX:+FlightRecorder",
    ]
    assert conf["spark.local.dir"] == str(paths.state / "spark" / "tmp")
    assert job_environment(paths)["TMPDIR"] == str(tmpdir)
    assert tmpdir.is_dir()


def test_kafka_cluster_id_is_22_char_urlsafe_base64() -> None:
    ids = {_kafka_uuid() for _ in range(2000)}
    assert len(ids) == 2000
    assert not any(i.startswith("-") for i in ids)
    assert all(len(i) == 22 and "=" not in i and "+" not in i and "/" not in i for i in ids)


def test_prometheus_discovers_targets_from_files(paths: StackPaths) -> None:
    prom = Prometheus(paths, port=19090, scrape_interval="1s")
    assert f"files: ['{paths.state / 'prometheus' / 'targets'}/*.json']" in prom.config()
    prom.set_targets("sim", ["127.0.0.1:8000"], labels={"pipeline": "demo"})
    written = (prom.targets_dir / "sim.json").read_text()
    assert '"targets": ["127.0.0.1:8000"]' in written and '"job": "sim"' in written
    prom.set_targets("sim", [])
    assert not (prom.targets_dir / "sim.json").exists()


def test_content_key_changes_with_any_input(tmp_path: Path) -> None:
    f = tmp_path / "pom.xml"
    f.write_text("a")
    first = content_key(f, "flags")
    assert content_key(f, "flags") == first
    assert content_key(f, "other") != first
    f.write_text("b")
    assert content_key(f, "flags") != first


def test_go_ldflags_carry_the_pinned_versions() -> None:
    k8s = K8S_TOOLS.ldflags()
    assert "-X k8s.io/component-base/version.gitVersion=v1.34.4" in k8s
    assert "-X k8s.io/component-base/version.gitMinor=34" in k8s
    helm = HELM_TOOLS.ldflags()
    assert "-X helm.sh/helm/v3/internal/version.version=v3.22.0" in helm
    assert "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=37" in helm


def test_cli_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    out = capsys.readouterr().out
    for command in ("up", "down", "install", "stack"):
        assert f"    {command} " in out


def test_each_pyspark_jars_folder_has_its_own_class_archive(
    paths: StackPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The JVM checks the archive's classpath entries by absolute path: an archive dumped by
    # another checkout's virtualenv is refused, so it must not be found under this one's key.
    keys = []
    for checkout in ("a", "b"):
        jars = tmp_path / checkout / "jars"
        jars.mkdir(parents=True)
        (jars / "spark-core_2.13-4.2.0.jar").write_bytes(b"")
        monkeypatch.setattr(spark_module, "_pyspark_jars", lambda jars=jars: jars)
        keys.append(class_archive_path(paths))
    assert keys[0] != keys[1]


def test_a_reinstalled_jar_gives_its_folder_another_class_archive(
    paths: StackPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The JVM also checks each classpath jar's size and modification time: a virtualenv synced
    # anew at the same path refuses the archive its predecessor dumped.
    jars = tmp_path / "jars"
    jars.mkdir()
    jar = jars / "spark-core_2.13-4.2.0.jar"
    jar.write_bytes(b"")
    monkeypatch.setattr(spark_module, "_pyspark_jars", lambda: jars)
    before = class_archive_path(paths)
    os.utime(jar, ns=(1_000_000_000, 1_000_000_000))
    assert class_archive_path(paths) != before


def test_pruning_keeps_the_archives_of_checkouts_that_still_exist(tmp_path: Path) -> None:
    folder = tmp_path / "spark-cds"
    folder.mkdir()
    live_jars = tmp_path / "live" / "jars"
    live_jars.mkdir(parents=True)
    own_jars = tmp_path / "own" / "jars"
    own_jars.mkdir(parents=True)

    def archive(name: str, jars: Path | None) -> Path:
        path = folder / f"{name}.jsa"
        path.write_bytes(b"")
        if jars is not None:
            (folder / f"{name}.jsa.jars").write_text(f"{jars}\n")
        return path

    current = archive("current", own_jars)
    other_live = archive("live", live_jars)
    gone = archive("gone", tmp_path / "deleted-clone" / "jars")
    unrecorded = archive("old", None)
    reinstalled = archive("own-before", own_jars)

    assert prune_class_archives(folder, keep=current, jars=own_jars) == [
        gone,
        unrecorded,
        reinstalled,
    ]
    assert sorted(p.name for p in folder.iterdir()) == [
        "current.jsa",
        "current.jsa.jars",
        "live.jsa",
        "live.jsa.jars",
    ]
    assert other_live.exists()
