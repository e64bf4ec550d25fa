"""The whole pipeline on the real node: the platform operators, the app release with its
CloudNativePG database, the in-cluster Kafka, a PageAnalyticsPipeline, simulator Jobs with a
ground-truth manifest, and the checks every scenario step ends with (exact accounting from
CloudNativePG's PostgreSQL, Prometheus' view of the driver)."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import yaml
from node_harness import get_json
from polling import eventually

from pagestream.stack.node.node import LocalNode
from pagestream.stack.node.platform import PROMETHEUS_NAMESPACE, kafka_bootstrap

PIPELINE = "page-views"
TOPIC = "page-views"
DB = "pagestream-db"
JOB_USER = "pagestream-pipeline"
PRODUCER_USER = "pagestream-producer"
PII_SECRET = "pagestream-pii"
CHECKPOINT_PVC = f"{PIPELINE}-checkpoint"
PAP = f"pageanalyticspipeline/{PIPELINE}"


def pipeline_manifest(namespace: str, spark_image: str, **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "kafka": {
            "bootstrapServers": kafka_bootstrap(namespace),
            "topic": {"name": TOPIC},
            "authentication": {"secretRef": {"name": JOB_USER}},
        },
        "postgres": {"cnpgCluster": {"name": DB}},
        "spark": {
            "image": spark_image,
            "imagePullPolicy": "IfNotPresent",
            # Two cores for the whole node: a quarter core requested a pod, one task slot each.
            "driver": {"cores": 1, "coreRequest": "250m", "memory": "768m"},
            "executor": {"instances": 1, "cores": 1, "coreRequest": "250m", "memory": "768m"},
            "triggerInterval": "2 seconds",
        },
        "processing": {"pii": {"hashKeySecretRef": {"name": PII_SECRET}}},
        "checkpoint": {"persistentVolumeClaim": {"claimName": CHECKPOINT_PVC}},
        "monitoring": {"monitor": "PodMonitor", "dashboards": True},
    }
    for path, value in overrides.items():
        node: dict[str, Any] = spec
        *parents, leaf = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return {
        "apiVersion": "pagestream.dev/v1alpha1",
        "kind": "PageAnalyticsPipeline",
        "metadata": {"name": PIPELINE, "namespace": namespace},
        "spec": spec,
    }


def support_objects(namespace: str) -> list[dict[str, Any]]:
    """The PII hash key Secret and the checkpoint claim the pipeline references."""
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": PII_SECRET, "namespace": namespace},
            "stringData": {"key": "node-e2e-pii-key-1f0c"},
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": CHECKPOINT_PVC, "namespace": namespace},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    ]


def simulator_job(
    namespace: str, image: str, name: str, *, seed: int, count: int, rate: float
) -> dict[str, Any]:
    """A known dataset with faults (duplicates, malformed and late records, bots), its
    ground-truth manifest printed to stdout (indented JSON)."""
    args = [
        f"--bootstrap-servers={kafka_bootstrap(namespace)}",
        f"--topic={TOPIC}",
        "--create-topic=3",
        f"--seed={seed}",
        f"--count={count}",
        f"--rate={rate}",
        "--duplicate-rate=0.03",
        "--malformed-rate=0.02",
        "--late-rate=0.02",
        "--late-by=30m",
        "--bot-share=0.05",
        "--no-progress",
        "--manifest=/dev/stdout",
        "--producer-config=security.protocol=SASL_PLAINTEXT",
        "--producer-config=sasl.mechanism=SCRAM-SHA-512",
        f"--producer-config=sasl.username={PRODUCER_USER}",
        "--producer-config=sasl.password=$(KAFKA_PASSWORD)",
    ]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "pagestream-simulator"}},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "simulator",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "args": args,
                            "env": [
                                {
                                    "name": "KAFKA_PASSWORD",
                                    "valueFrom": {
                                        "secretKeyRef": {"name": PRODUCER_USER, "key": "password"}
                                    },
                                }
                            ],
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }
                    ],
                },
            },
        },
    }


def _manifest_in(log: str) -> dict[str, Any]:
    """The ground-truth manifest the simulator printed (an indented JSON object from a line
    ``{`` to a line ``}``) among its log lines. The pod's log interleaves stdout and stderr
    line by line, so the simulator's own log records (one JSON object per line, ``{"ts": ...``)
    can fall between the manifest's lines: they are left out (an indented object's inner lines
    start with spaces)."""
    lines = [line for line in log.splitlines() if not line.startswith('{"')]
    start = lines.index("{")
    end = lines.index("}", start)
    manifest: dict[str, Any] = json.loads("\n".join(lines[start : end + 1]))
    assert "ground_truth" in manifest, log[-3000:]
    return manifest


@dataclass
class Scenario:
    node: LocalNode
    namespace: str
    images: dict[str, str]
    manifests: list[dict[str, Any]] = field(default_factory=list)
    runs: int = 0

    def kubectl(self, *args: str, **kw: Any) -> str:
        return self.node.kubectl("-n", self.namespace, *args, **kw).stdout

    def apply(self, *objects: dict[str, Any]) -> None:
        stream = "".join("---\n" + yaml.safe_dump(o) for o in objects)
        self.node.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=stream)

    def get(self, *args: str) -> Any:
        return get_json(self.node, "-n", self.namespace, *args)

    def pipeline(self) -> dict[str, Any]:
        return self.get(PAP)

    def patch(self, spec: dict[str, Any]) -> None:
        """A merge patch of the pipeline, as a user's `kubectl patch`."""
        self.kubectl("patch", PAP, "--type=merge", "-p", json.dumps(spec))

    # -- traffic

    def start_simulator(self, *, count: int, rate: float = 0) -> str:
        self.runs += 1
        name = f"simulator-{self.runs}"
        job = simulator_job(
            self.namespace,
            self.images["simulator"],
            name,
            seed=100 + self.runs,
            count=count,
            rate=rate,
        )
        self.apply(job)
        return name

    def finish_simulator(self, name: str, timeout: float = 240) -> dict[str, Any]:
        """Wait for the Job, keep and return its ground-truth manifest."""
        self.node.kubectl(
            "-n",
            self.namespace,
            "wait",
            "--for=condition=Complete",
            f"job/{name}",
            f"--timeout={int(timeout)}s",
            timeout=timeout + 30,
        )
        log = self.kubectl("logs", f"job/{name}", "-c", "simulator")
        manifest = _manifest_in(log)
        assert manifest["failed"] == 0 and manifest["delivered"] == manifest["records_sent"]
        self.manifests.append(manifest)
        self.kubectl("delete", "job", name, "--wait=false")
        return manifest

    def send(self, count: int, rate: float = 0) -> dict[str, Any]:
        return self.finish_simulator(self.start_simulator(count=count, rate=rate))

    # -- what PostgreSQL holds

    def primary_pod(self) -> str:
        cluster = self.get(f"clusters.postgresql.cnpg.io/{DB}")
        return str(cluster["status"]["currentPrimary"])

    def sql(self, statement: str) -> list[list[str]]:
        out = self.kubectl(
            "exec",
            self.primary_pod(),
            "-c",
            "postgres",
            "--",
            "psql",
            "-d",
            "app",
            "-X",
            "-A",
            "-t",
            "-F",
            "\t",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            statement,
        )
        return [line.split("\t") for line in out.splitlines() if line]

    def accounting(self) -> dict[str, int]:
        ((batches, consumed, pv, other, dup, dead, bots),) = self.sql(
            "SELECT count(*), coalesce(sum(consumed),0), coalesce(sum(page_views),0), "
            "coalesce(sum(other_events),0), coalesce(sum(duplicates),0), "
            "coalesce(sum(dead_lettered),0), coalesce(sum(bots),0) "
            "FROM pagestream.batch_commits"
        )
        return {
            "batches": int(batches),
            "consumed": int(consumed),
            "page_views": int(pv),
            "other_events": int(other),
            "duplicates": int(dup),
            "dead_lettered": int(dead),
            "bots": int(bots),
        }

    def expected(self) -> dict[str, Any]:
        dead: Counter[str] = Counter()
        totals: Counter[str] = Counter()
        for manifest in self.manifests:
            outcomes = manifest["ground_truth"]["job_outcomes"]
            dead.update(outcomes["dead_letters"])
            for key in ("stored_page_views", "stored_other_events", "duplicates", "bots"):
                totals[key] += outcomes[key]
            totals["consumed"] += manifest["records_sent"]
        return {"dead_letters": dict(sorted(dead.items())), **totals}

    def wait_all_committed(self, timeout: float = 300) -> dict[str, int]:
        sent = sum(m["records_sent"] for m in self.manifests)

        def caught_up() -> dict[str, int] | None:
            try:
                acc = self.accounting()
            except Exception:  # the database may be failing over
                return None
            return acc if acc["consumed"] >= sent else None

        return eventually(
            caught_up, timeout=timeout, interval=2, what=f"the job to commit all {sent} records"
        )

    def check_exact(self, timeout: float = 300) -> dict[str, int]:
        """consumed = stored + duplicates + dead-lettered + bots, each equal to the ground
        truth of every simulator run so far; facts and rollups agree with it."""
        acc = self.wait_all_committed(timeout)
        exp = self.expected()
        assert acc["consumed"] == exp["consumed"], (acc, exp)
        assert acc["page_views"] == exp["stored_page_views"], (acc, exp)
        assert acc["other_events"] == exp["stored_other_events"], (acc, exp)
        assert acc["duplicates"] == exp["duplicates"], (acc, exp)
        assert acc["bots"] == exp["bots"], (acc, exp)
        assert acc["dead_lettered"] == sum(exp["dead_letters"].values()), (acc, exp)
        assert acc["consumed"] == (
            acc["page_views"]
            + acc["other_events"]
            + acc["duplicates"]
            + acc["dead_lettered"]
            + acc["bots"]
        )
        by_reason = dict(
            (r, int(n))
            for r, n in self.sql(
                "SELECT reason, count(*) FROM pagestream.dead_letters GROUP BY 1 ORDER BY 1"
            )
        )
        assert by_reason == exp["dead_letters"]
        ((facts, distinct),) = self.sql(
            "SELECT count(*), count(DISTINCT event_id) FROM pagestream.fact_page_views"
        )
        assert int(facts) == int(distinct) == exp["stored_page_views"]
        ((others,),) = self.sql("SELECT count(*) FROM pagestream.fact_other_events")
        assert int(others) == exp["stored_other_events"]
        # Every rollup grain and dimension adds up to the stored page views.
        rollups = self.sql(
            "SELECT grain, dimension, sum(views) FROM pagestream.agg_page_views "
            "GROUP BY 1, 2 ORDER BY 1, 2"
        )
        assert rollups, "no rollups"
        for grain, dimension, views in rollups:
            assert int(views) == exp["stored_page_views"], (grain, dimension, views)
        return acc

    # -- pods

    def spark_pods(self, role: str) -> list[dict[str, Any]]:
        pods = self.get("pods", "-l", f"spark-role={role},pagestream.dev/pipeline={PIPELINE}")
        return [p for p in pods["items"] if not p["metadata"].get("deletionTimestamp")]

    def running(self, role: str) -> list[dict[str, Any]]:
        return [p for p in self.spark_pods(role) if p["status"].get("phase") == "Running"]

    def wait_running(self, executors: int = 1, timeout: float = 300) -> dict[str, Any]:
        def up() -> dict[str, Any] | None:
            drivers, execs = self.running("driver"), self.running("executor")
            if len(drivers) == 1 and len(execs) == executors:
                return drivers[0]
            return None

        return eventually(
            up,
            timeout=timeout,
            interval=2,
            what=f"one driver and {executors} executor pod(s) Running",
        )

    def wait_new_driver(self, before_uid: str, *, what: str, timeout: float = 300) -> None:
        """Until a Running driver pod other than the one with ``before_uid`` exists."""
        eventually(
            lambda: [p for p in self.running("driver") if p["metadata"]["uid"] != before_uid],
            timeout=timeout,
            interval=2,
            what=what,
        )

    def wait_state(self, state: str, timeout: float = 300) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            pap = self.pipeline()
            return pap if pap.get("status", {}).get("lifecycleState") == state else None

        return eventually(reached, timeout=timeout, interval=2, what=f"pap state {state}")

    # -- Prometheus

    def prom_query(self, expr: str) -> list[dict[str, Any]]:
        path = (
            f"/api/v1/namespaces/{PROMETHEUS_NAMESPACE}/services/prometheus-operated:web/proxy"
            "/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": f"{time.time():.3f}"})
        )
        body = json.loads(self.node.kubectl("get", "--raw", path).stdout)
        assert body["status"] == "success", body
        return list(body["data"]["result"])
