"""bench/_benchlib.py's per-process CPU accounting: parsing /proc/<pid>/stat, sorting a job's
processes into classes, and adding up CPU without counting a reaped child twice."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pagestream.stack.paths import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "bench"))
import _benchlib as b

TICK = b.CLOCK_TICKS


def stat(
    pid: int,
    comm: str,
    ppid: int,
    own: int = 0,
    children: int = 0,
    start: int = 1,
    rss: int = 0,
) -> b.ProcStat:
    return b.ProcStat(pid, comm, ppid, own, children, start, rss)


def stat_line(pid: int, comm: str, ppid: int, times: tuple[int, int, int, int]) -> str:
    utime, stime, cutime, cstime = times
    fields = ["S", ppid, 1, 1, 0, -1, 4194304, 10, 0, 0, 0, utime, stime, cutime, cstime]
    fields += [20, 0, 12, 0, 4242, 12345678, 321]  # ... starttime, vsize, rss
    fields += [0] * 28
    return f"{pid} ({comm}) " + " ".join(str(f) for f in fields) + "\n"


def test_parse_stat_counts_fields_from_the_last_parenthesis() -> None:
    parsed = b.parse_stat(stat_line(77, "evil) (name S 1", 5, (100, 20, 7, 3)))
    assert parsed == b.ProcStat(
        pid=77,
        comm="evil) (name S 1",
        ppid=5,
        own_ticks=120,
        children_ticks=10,
        start_ticks=4242,
        rss_pages=321,
    )


def test_parse_stat_reads_this_process() -> None:
    with open("/proc/self/stat") as f:
        me = b.parse_stat(f.read())
    assert me.comm and me.ppid > 0 and me.start_ticks > 0 and me.rss_pages > 0


def test_classify_a_local_spark_job_and_the_servers() -> None:
    procs = {
        s.pid: s
        for s in [
            stat(1, "systemd", 0),
            stat(10, "python3", 1),  # the job we started
            stat(11, "java", 10),  # spark-submit, exec'd into the JVM
            stat(12, "python3", 11),  # pyspark.daemon
            stat(13, "python3", 12),  # a worker it forked
            stat(14, "bash", 11),  # something the JVM runs
            stat(15, "python3", 10),  # a helper the driver starts itself
            stat(20, "postgres", 1),  # postmaster
            stat(21, "postgres", 20),  # a backend
            stat(30, "java", 1),  # the Kafka broker
            stat(40, "python3", 1),  # not ours
        ]
    }
    classes = b.classify(procs, 10, {"postgres": 20, "kafka_broker": 30})
    assert classes == {
        10: b.DRIVER_PYTHON,
        11: b.SPARK_JVM,
        12: b.PYTHON_WORKERS,
        13: b.PYTHON_WORKERS,
        14: b.SPARK_JVM,
        15: b.DRIVER_PYTHON,
        20: "postgres",
        21: "postgres",
        30: "kafka_broker",
    }
    assert b.classify(procs, 99, {}) == {}


def account_of(*snapshots: list[b.ProcStat]) -> dict[str, float]:
    account = b.CpuAccount()
    for snapshot in snapshots:
        procs = {s.pid: s for s in snapshot}
        account.update(procs, b.classify(procs, 10, {"postgres": 20}))
    return {c: round(s * TICK) for c, s in account.seconds().items()}


def test_a_sampled_child_reaped_by_a_parent_of_another_class_is_counted_once_in_its_own() -> None:
    first = [
        stat(10, "python3", 1, own=5),
        stat(11, "java", 10, own=100, children=30),  # 30: the launcher, before the exec
        stat(12, "python3", 11, own=40, children=8),  # the daemon, 8 from reaped workers
    ]
    second = [
        stat(10, "python3", 1, own=6),
        stat(11, "java", 10, own=120, children=30),
        stat(12, "python3", 11, own=45, children=10),
    ]
    # The daemon is gone and the JVM has reaped it: its cutime now holds the daemon's 45 + 10,
    # and 2 more that the daemon spent after its last sample.
    third = [
        stat(10, "python3", 1, own=6),
        stat(11, "java", 10, own=150, children=30 + 45 + 10 + 2),
    ]
    assert account_of(first, second, third) == {
        b.DRIVER_PYTHON: 6,
        b.SPARK_JVM: 150 + 30 + 2,
        b.PYTHON_WORKERS: 45 + 10,
    }


def test_children_never_sampled_count_in_their_parents_class() -> None:
    # Backends that came and went between two samples are in the postmaster's cutime.
    first = [stat(20, "postgres", 1, own=50, children=200), stat(21, "postgres", 20, own=3)]
    second = [stat(20, "postgres", 1, own=52, children=200 + 3 + 40)]
    assert account_of(first, second) == {"postgres": 52 + 200 + 3 + 40}


def test_a_reused_pid_is_another_process() -> None:
    first = [stat(20, "postgres", 1, own=10), stat(21, "postgres", 20, own=7, start=100)]
    second = [
        stat(20, "postgres", 1, own=10, children=7),
        stat(21, "postgres", 20, own=2, start=500),  # a new backend with the same pid
    ]
    assert account_of(first, second) == {"postgres": 10 + 7 + 2}


def test_seconds_at_interpolates_between_samples() -> None:
    samples = [
        (100.0, {"a": 0.0}),
        (101.0, {"a": 2.0, "b": 1.0}),
        (103.0, {"a": 6.0, "b": 1.0}),
    ]
    assert b.seconds_at(samples, 99.0) == {"a": 0.0}
    assert b.seconds_at(samples, 100.5) == {"a": 1.0, "b": 0.5}
    assert b.seconds_at(samples, 102.0) == {"a": 4.0, "b": 1.0}
    assert b.seconds_at(samples, 200.0) == {"a": 6.0, "b": 1.0}
    assert b.seconds_at([], 1.0) == {}


def test_cpu_per_record_adds_a_total() -> None:
    assert b.cpu_per_record({"spark_jvm": 3.0, "postgres": 1.0}, 100_000) == {
        "records": 100_000,
        "cpu_seconds": {"postgres": 1.0, "spark_jvm": 3.0, "total": 4.0},
        "cpu_us_per_record": {"postgres": 10.0, "spark_jvm": 30.0, "total": 40.0},
    }
    assert b.cpu_per_record({"spark_jvm": 3.0}, 0)["cpu_us_per_record"] is None


def test_the_sampler_sees_a_busy_child_and_its_memory() -> None:
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6: pass\n"
    proc = subprocess.Popen([sys.executable, "-c", burn])
    sampler = b.ProcessSampler(proc.pid, {}, interval=0.05)
    proc.wait()
    seconds = sampler.stop()
    assert seconds[b.DRIVER_PYTHON] == pytest.approx(0.6, abs=0.25)
    assert set(seconds) == {b.DRIVER_PYTHON}
    peak = sampler.peak_rss_mib()
    assert peak["job_tree"] == peak[b.DRIVER_PYTHON] > 1
