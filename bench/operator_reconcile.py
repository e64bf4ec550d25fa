"""Reconcile latency and memory of the pagestream operator (a benchmark, not a test).

Starts its own etcd + kube-apiserver + kube-controller-manager (state in
``.pagestream/bench/operator``), installs the pipeline CRD and the real upstream CRDs, runs the
operator as a subprocess (``python -m pagestream_operator``, default settings except ports) and
measures, with a watch on SparkApplications:

- **one at a time**: ``--single`` pipelines created one after the other, each waited for;
  latency = pipeline create request sent -> SparkApplication ADDED seen by the watch;
- **a burst of ``--burst``** pipelines created back to back: the same latency per pipeline, and
  the time until all of them converged (SparkApplication exists *and* the pipeline's status
  reports ``observedGeneration`` and ``lifecycleState``);
- the operator's resident memory (VmRSS, and the peak VmHWM) after the burst.

Targets: p95 < 1 s for one, the burst of 200 converged within 30 s, < 150 MB RSS.
Writes bench/results/operator_reconcile.json.

    uv run python bench/operator_reconcile.py [--single 30] [--burst 200]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

from pagestream.stack.crds import OPERATOR_CHILD_CRDS, crd_file, upstream_crds
from pagestream.stack.paths import PIPELINE_CRD, REPO_ROOT, StackPaths, default_cache_dir
from pagestream.stack.process import free_port
from pagestream.stack.stack import LocalStack
from pagestream_operator.spec import API_GROUP as GROUP
from pagestream_operator.spec import API_VERSION as VERSION
from pagestream_operator.spec import PLURAL

RESULTS = Path(__file__).resolve().parent / "results" / "operator_reconcile.json"
STATE = REPO_ROOT / ".pagestream" / "bench" / "operator"


def pipeline(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "PageAnalyticsPipeline",
        "metadata": {"name": name},
        "spec": {
            "kafka": {"bootstrapServers": "kafka:9092", "topic": {"name": "page-views"}},
            "postgres": {"cnpgCluster": {"name": "warehouse"}},
            "spark": {"image": "registry.example/pagestream-spark:0.1.0"},
            "processing": {"pii": {"hashKeySecretRef": {"name": "pii-key"}}},
            "checkpoint": {"uri": "s3a://checkpoints"},
        },
    }


class AppWatcher:
    """Records when each SparkApplication in a namespace is first seen (monotonic clock)."""

    def __init__(self, objects: client.CustomObjectsApi, namespace: str) -> None:
        self.objects, self.namespace = objects, namespace
        self.seen: dict[str, float] = {}
        self.cond = threading.Condition()
        self._stop = watch.Watch()
        self._stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self._consume()
        except Exception:  # the stream is cut when stop() is called
            if not self._stopping:
                raise

    def _consume(self) -> None:
        for event in self._stop.stream(
            self.objects.list_namespaced_custom_object,
            "sparkoperator.k8s.io",
            "v1beta2",
            self.namespace,
            "sparkapplications",
            timeout_seconds=3600,
        ):
            if event["type"] == "ADDED":
                with self.cond:
                    self.seen.setdefault(event["object"]["metadata"]["name"], time.monotonic())
                    self.cond.notify_all()

    def wait_for(self, name: str, timeout: float) -> float:
        with self.cond:
            if not self.cond.wait_for(lambda: name in self.seen, timeout=timeout):
                raise TimeoutError(f"SparkApplication {name} not seen within {timeout}s")
            return self.seen[name]

    def stop(self) -> None:
        self._stopping = True
        self._stop.stop()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def summary(latencies: list[float]) -> dict[str, float]:
    return {
        "count": len(latencies),
        "p50_seconds": round(percentile(latencies, 0.50), 4),
        "p95_seconds": round(percentile(latencies, 0.95), 4),
        "max_seconds": round(max(latencies), 4),
        "mean_seconds": round(statistics.fmean(latencies), 4),
    }


def rss_mb(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = round(int(value.split()[0]) / 1024, 1)
    return {"rss_mb": fields["VmRSS"], "peak_rss_mb": fields["VmHWM"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--single", type=int, default=30, help="pipelines created one at a time")
    parser.add_argument("--burst", type=int, default=200, help="pipelines created back to back")
    parser.add_argument("--clients", type=int, default=8, help="threads creating the burst")
    args = parser.parse_args()

    load_at_start = round(os.getloadavg()[0], 2)
    if STATE.exists():
        LocalStack(StackPaths(cache=default_cache_dir(), state=STATE)).down()
        shutil.rmtree(STATE)
    STATE.mkdir(parents=True)
    paths = StackPaths(cache=default_cache_dir(), state=STATE)
    stack = LocalStack(paths, durable_postgres=False, with_controller_manager=True)
    kube = stack.start("kube")
    env = {**os.environ, "KUBECONFIG": str(kube.kubeconfig)}  # type: ignore[attr-defined]
    operator: subprocess.Popen[bytes] | None = None
    try:
        folder = upstream_crds(paths.cache)
        for path in [PIPELINE_CRD, *(crd_file(folder, n) for n in OPERATOR_CHILD_CRDS)]:
            subprocess.run(
                ["kubectl", "apply", "--server-side", "-f", str(path)],
                env=env,
                check=True,
                capture_output=True,
            )
        subprocess.run(
            ["kubectl", "wait", "--for=condition=Established", "--timeout=60s", "crd", "--all"],
            env=env,
            check=True,
            capture_output=True,
        )
        api = config.new_client_from_config(config_file=str(kube.kubeconfig))  # type: ignore[attr-defined]
        objects = client.CustomObjectsApi(api)
        core = client.CoreV1Api(api)
        for ns in ("single", "burst"):
            core.create_namespace({"metadata": {"name": ns}})

        liveness, metrics = free_port(), free_port()
        log = (paths.logs / "operator.log").open("ab")
        operator = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pagestream_operator",
                f"--kubeconfig={kube.kubeconfig}",  # type: ignore[attr-defined]
                f"--liveness-port={liveness}",
                f"--metrics-port={metrics}",
                "--bind-address=127.0.0.1",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{liveness}/healthz", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or operator.poll() is not None:
                    log_file = paths.logs / "operator.log"
                    raise RuntimeError(f"operator did not start; see {log_file}") from None
                time.sleep(0.2)
        rss_idle = rss_mb(operator.pid)

        # One at a time.
        single_watch = AppWatcher(objects, "single")
        time.sleep(1)  # let the watch establish
        single: list[float] = []
        for i in range(args.single):
            name = f"one-{i:03d}"
            sent = time.monotonic()
            objects.create_namespaced_custom_object(
                GROUP, VERSION, "single", PLURAL, pipeline(name)
            )
            single.append(single_watch.wait_for(name, timeout=60) - sent)
        single_watch.stop()

        # A burst.
        burst_watch = AppWatcher(objects, "burst")
        time.sleep(1)
        sent_at: dict[str, float] = {}
        names = [f"many-{i:03d}" for i in range(args.burst)]

        def create(name: str) -> None:
            sent_at[name] = time.monotonic()
            objects.create_namespaced_custom_object(GROUP, VERSION, "burst", PLURAL, pipeline(name))

        # Several client threads, so the burst measures the operator, not one client's
        # request rate.
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=args.clients) as pool:
            list(pool.map(create, names))
        created_all = time.monotonic() - started
        burst = [burst_watch.wait_for(n, timeout=120) - sent_at[n] for n in names]
        all_apps = max(burst_watch.seen[n] for n in names) - started

        def converged() -> bool:
            items = objects.list_namespaced_custom_object(GROUP, VERSION, "burst", PLURAL)["items"]
            ready = [
                p
                for p in items
                if (p.get("status") or {}).get("observedGeneration") == p["metadata"]["generation"]
                and (p.get("status") or {}).get("lifecycleState")
            ]
            return len(ready) == args.burst

        while not converged():
            if time.monotonic() - started > 300:
                raise RuntimeError("the burst did not converge within 300 s")
            time.sleep(0.1)
        converged_after = time.monotonic() - started
        burst_watch.stop()
        rss_after = rss_mb(operator.pid)
        cpu = Path(f"/proc/{operator.pid}/stat").read_text().split()
        tick = os.sysconf("SC_CLK_TCK")
        cpu_seconds = (int(cpu[13]) + int(cpu[14])) / tick

        result = {
            "benchmark": "pagestream operator: pipeline created -> SparkApplication exists",
            "command": "uv run python "
            + shlex.join(["bench/operator_reconcile.py", *sys.argv[1:]]),
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "load_average_1m_at_start": load_at_start,
                "python": platform.python_version(),
                "load_average_1m_at_end": round(os.getloadavg()[0], 2),
            },
            "api_server": kube.get("/version")["gitVersion"],  # type: ignore[attr-defined]
            "operator_settings": "defaults (8 workers, resync 60 s)",
            "single": summary(single),
            "burst": {
                "pipelines": args.burst,
                "create_requests_seconds": round(created_all, 2),
                "all_spark_applications_seconds": round(all_apps, 2),
                "all_converged_seconds": round(converged_after, 2),
                "latency": summary(burst),
            },
            "operator_memory": {"idle": rss_idle, "after_burst": rss_after},
            "operator_cpu_seconds_total": round(cpu_seconds, 2),
            "targets": {
                "single_p95_under_1s": percentile(single, 0.95) < 1.0,
                "burst_200_converged_under_30s": args.burst >= 200 and converged_after < 30,
                "rss_under_150mb": rss_after["peak_rss_mb"] < 150,
            },
        }
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
        return 0
    finally:
        if operator is not None and operator.poll() is None:
            operator.terminate()
            try:
                operator.wait(timeout=20)
            except subprocess.TimeoutExpired:
                operator.kill()
        stack.down()


if __name__ == "__main__":
    sys.exit(main())
