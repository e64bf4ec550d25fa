"""What every benchmark script records beside its figures: the machine, the commit, the load,
and where the result goes. Results are written by the scripts themselves, never by hand."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import platform
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    mem_gib = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": mem_gib,
        "os": platform.platform(),
        "python": platform.python_version(),
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
    }


def git_commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def write_result(
    name: str, figures: dict[str, Any], machine_at_start: dict[str, Any] | None = None
) -> Path:
    """bench/results/<name>.json with the command that produced it and the machine it ran on
    (``machine_at_start``, taken when the benchmark began, so that the load average is the one
    at its start; else taken now)."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    document = {
        "benchmark": name,
        "command": "uv run python " + shlex.join([os.path.relpath(sys.argv[0]), *sys.argv[1:]]),
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "machine": machine_at_start or machine(),
        **figures,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


# Per-process CPU and memory, read from /proc. The pure parts (parsing a stat line, sorting
# processes into classes, adding up CPU without counting a reaped child twice) are functions of
# their inputs, unit-tested in tests/unit/bench/test_process_sampling.py.

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

# The process classes of a job's tree (the root is the Python process we started) and of the
# servers it talks to.
DRIVER_PYTHON = "driver_python"  # the job's own process: the foreachBatch sink runs here
SPARK_JVM = "spark_jvm"  # the driver JVM (local mode: the executors' threads too)
PYTHON_WORKERS = "python_workers"  # pyspark.daemon and the workers it forks
JOB_CLASSES = (SPARK_JVM, PYTHON_WORKERS, DRIVER_PYTHON)


class ProcStat(NamedTuple):
    """What one line of /proc/<pid>/stat says about a process (times in clock ticks)."""

    pid: int
    comm: str
    ppid: int
    own_ticks: int  # utime + stime: the process itself, all its threads
    children_ticks: int  # cutime + cstime: its children that exited and that it waited for
    start_ticks: int  # starttime: with the pid, names the process even if the pid is reused
    rss_pages: int


def parse_stat(text: str) -> ProcStat:
    """One /proc/<pid>/stat line. The command name is in parentheses and may itself hold
    spaces and parentheses, so the fields are counted from the last ')'."""
    head, rest = text.rsplit(")", 1)
    pid, comm = head.split("(", 1)
    fields = rest.split()  # fields[0] is field 3 of proc(5), the state
    return ProcStat(
        pid=int(pid),
        comm=comm,
        ppid=int(fields[1]),
        own_ticks=int(fields[11]) + int(fields[12]),
        children_ticks=int(fields[13]) + int(fields[14]),
        start_ticks=int(fields[19]),
        rss_pages=int(fields[21]),
    )


def read_processes(proc: Path = Path("/proc")) -> dict[int, ProcStat]:
    """Every process visible now, by pid (those that exit while being read are skipped)."""
    out: dict[int, ProcStat] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = parse_stat((entry / "stat").read_text())
        except (OSError, IndexError, ValueError):
            continue
        out[stat.pid] = stat
    return out


def _children(procs: dict[int, ProcStat]) -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for stat in procs.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    return children


def descendants(procs: dict[int, ProcStat], root: int) -> list[int]:
    """``root`` and every process below it, as far as they are alive in ``procs``."""
    children = _children(procs)
    found, stack = [], [root] if root in procs else []
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def classify(
    procs: dict[int, ProcStat], job_root: int | None, servers: dict[str, int]
) -> dict[int, str]:
    """The class of each process of interest. In the job's tree: the root is the driver's
    Python (with any Python it starts itself); a process that is not Python is the Spark JVM
    (or the launcher shell it is exec'd from, or a helper the JVM runs); Python below the JVM
    is pyspark's daemon and the workers it forks. A server's tree (the postmaster and its
    backends, the Kafka broker) is that server's class."""
    classes: dict[int, str] = {}
    for name, root in servers.items():
        for pid in descendants(procs, root):
            classes[pid] = name
    if job_root is None or job_root not in procs:
        return classes
    children = _children(procs)
    stack = [(job_root, DRIVER_PYTHON)]
    while stack:
        pid, cls = stack.pop()
        classes[pid] = cls
        for child in children.get(pid, []):
            python = procs[child].comm.startswith("python")
            if cls == DRIVER_PYTHON:
                stack.append((child, DRIVER_PYTHON if python else SPARK_JVM))
            else:
                stack.append((child, PYTHON_WORKERS if python else cls))
    return classes


Key = tuple[int, int]  # (pid, start_ticks)


class _Seen(NamedTuple):
    cls: str
    parent: Key | None
    own_ticks: int
    children_ticks: int
    last_sample: int


class CpuAccount:
    """CPU time by process class, over every process of interest ever sampled.

    A process counts its own time as last sampled. The time of children it has reaped is in
    its cutime/cstime; children we sampled and that are gone by then count themselves (in
    their own class: a Python worker's CPU stays the workers' after the JVM reaps it), so the
    parent counts only the rest, the children that lived and died between two samples (short
    PostgreSQL backends, forked Python workers). What a sampled process spends after its last
    sample (at most one interval) counts in its parent's class once the parent reaps it, or
    is lost if the parent is not sampled again."""

    def __init__(self) -> None:
        self._seen: dict[Key, _Seen] = {}
        self._samples = 0

    def update(self, procs: dict[int, ProcStat], classes: dict[int, str]) -> None:
        self._samples += 1
        for pid, cls in classes.items():
            stat = procs[pid]
            parent = procs.get(stat.ppid)
            self._seen[(pid, stat.start_ticks)] = _Seen(
                cls,
                (parent.pid, parent.start_ticks) if parent else None,
                stat.own_ticks,
                stat.children_ticks,
                self._samples,
            )

    def seconds(self) -> dict[str, float]:
        """CPU seconds so far by class."""
        gone_children: dict[Key, int] = {}
        for seen in self._seen.values():
            if seen.parent is None or seen.parent not in self._seen:
                continue
            if seen.last_sample < self._seen[seen.parent].last_sample:
                total = seen.own_ticks + seen.children_ticks
                gone_children[seen.parent] = gone_children.get(seen.parent, 0) + total
        ticks: dict[str, int] = {}
        for key, seen in self._seen.items():
            unseen = max(0, seen.children_ticks - gone_children.get(key, 0))
            ticks[seen.cls] = ticks.get(seen.cls, 0) + seen.own_ticks + unseen
        return {cls: n / CLOCK_TICKS for cls, n in ticks.items()}


def seconds_at(samples: list[tuple[float, dict[str, float]]], when: float) -> dict[str, float]:
    """CPU seconds by class at time ``when``, interpolated linearly between the two samples
    around it (the first or last sample outside their range)."""
    if not samples:
        return {}
    if when <= samples[0][0]:
        return dict(samples[0][1])
    for (t0, a), (t1, b) in itertools.pairwise(samples):
        if t0 <= when <= t1:
            share = (when - t0) / (t1 - t0) if t1 > t0 else 1.0
            return {c: a.get(c, 0.0) + (b.get(c, 0.0) - a.get(c, 0.0)) * share for c in b | a}
    return dict(samples[-1][1])


def cpu_per_record(seconds: dict[str, float], records: int) -> dict[str, object]:
    """CPU seconds and µs per record by class, and their total (no per-record figures for no
    records)."""
    by_class = dict(sorted(seconds.items())) | {"total": sum(seconds.values())}
    return {
        "records": records,
        "cpu_seconds": {c: round(s, 2) for c, s in by_class.items()},
        "cpu_us_per_record": (
            {c: round(s * 1e6 / records, 1) for c, s in by_class.items()} if records > 0 else None
        ),
    }


class ProcessSampler:
    """Samples, in the background, a job's process tree (CPU by class, peak RSS of the tree and
    of each class) and the CPU of the servers it talks to (by their root pid: the PostgreSQL
    postmaster, the Kafka broker). Server CPU counts from the first sample on; the job's
    processes are new, so all of theirs counts. ``samples`` holds (wall time, CPU seconds by
    class) to cut a window out of the run (see ``seconds_at``). Sampling ends when the job's
    root process exits: a JVM still shutting down then (pyspark does not wait for it) is not
    followed further."""

    def __init__(self, job_root: int, servers: dict[str, int], interval: float = 0.25) -> None:
        self.job_root, self.servers, self.interval = job_root, servers, interval
        self.account = CpuAccount()
        self.samples: list[tuple[float, dict[str, float]]] = []
        self.peak_rss: dict[str, int] = {}
        self._servers_at_start: dict[str, float] = {}
        self._stop = threading.Event()
        self.sample()
        self._servers_at_start = {c: s for c, s in self.samples[0][1].items() if c in self.servers}
        self.samples[0] = (self.samples[0][0], self._since_start(self.account.seconds()))
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _since_start(self, seconds: dict[str, float]) -> dict[str, float]:
        return {c: s - self._servers_at_start.get(c, 0.0) for c, s in seconds.items()}

    def sample(self) -> None:
        procs = read_processes()
        classes = classify(procs, self.job_root, self.servers)
        self.account.update(procs, classes)
        rss: dict[str, int] = {}
        for pid, cls in classes.items():
            if cls in JOB_CLASSES:
                rss[cls] = rss.get(cls, 0) + procs[pid].rss_pages * PAGE_SIZE
        rss["job_tree"] = sum(rss.values())
        for cls, value in rss.items():
            self.peak_rss[cls] = max(self.peak_rss.get(cls, 0), value)
        self.samples.append((time.time(), self._since_start(self.account.seconds())))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> dict[str, float]:
        """Stop sampling (one last sample of the servers first); CPU seconds by class."""
        self._stop.set()
        self._thread.join()
        self.sample()
        return self.samples[-1][1]

    def peak_rss_mib(self) -> dict[str, float]:
        return {c: round(b / 1024 / 1024, 1) for c, b in sorted(self.peak_rss.items())}
