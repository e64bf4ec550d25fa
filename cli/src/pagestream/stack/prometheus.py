"""Prometheus from Debian's packages, scraping the local components it is told about.

Targets live in file-based service discovery files (one per job), so components can be added
or removed while Prometheus runs, without a restart.
"""

from __future__ import annotations

import json
import shutil
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pagestream.stack.errors import StackError
from pagestream.stack.paths import StackPaths
from pagestream.stack.process import ManagedProcess, wait_until


def prometheus_binary(name: str = "prometheus") -> str:
    path = shutil.which(name)
    if not path:
        raise StackError(
            f"`{name}` is not installed",
            hint="run `make bootstrap` (it runs `apt-get install prometheus`)",
        )
    return path


@dataclass
class Prometheus:
    paths: StackPaths
    port: int
    scrape_interval: str = "5s"
    retention: str = "2d"

    @property
    def home(self) -> Path:
        return self.paths.component_dir("prometheus")

    @property
    def targets_dir(self) -> Path:
        return self.home / "targets"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess(
            "prometheus",
            self.home / "prometheus.pid",
            self.paths.logs / "prometheus.log",
            tied=self.paths.tied,
        )

    def ensure_installed(self) -> str:
        return prometheus_binary()

    def config(self) -> str:
        return "\n".join(
            [
                "global:",
                f"  scrape_interval: {self.scrape_interval}",
                f"  evaluation_interval: {self.scrape_interval}",
                "scrape_configs:",
                "  - job_name: prometheus",
                "    static_configs:",
                f"      - targets: ['127.0.0.1:{self.port}']",
                # Every other job comes from a discovery file written by set_targets(); the
                # job label inside each file names the component.
                "  - job_name: pagestream",
                "    file_sd_configs:",
                f"      - files: ['{self.targets_dir}/*.json']",
                "        refresh_interval: 1s",
                "",
            ]
        )

    def set_targets(
        self, job: str, targets: list[str], labels: dict[str, str] | None = None
    ) -> None:
        """Tell Prometheus to scrape ``targets`` (host:port) under ``job``; [] removes the job."""
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        path = self.targets_dir / f"{job}.json"
        if not targets:
            path.unlink(missing_ok=True)
            return
        entry = [{"targets": targets, "labels": {"job": job, **(labels or {})}}]
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entry))
        tmp.replace(path)  # atomic: Prometheus never reads a half-written file

    def start(self, *, timeout: float = 60.0) -> None:
        binary = self.ensure_installed()
        self.home.mkdir(parents=True, exist_ok=True)
        self.targets_dir.mkdir(exist_ok=True)
        config = self.home / "prometheus.yml"
        config.write_text(self.config())
        self.check_config(config)
        proc = self.process
        proc.start(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.home / 'data'}",
                f"--storage.tsdb.retention.time={self.retention}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
                "--log.level=warn",
            ]
        )
        wait_until(
            self.healthy,
            timeout=timeout,
            what=f"Prometheus on {self.url}",
            alive=proc.running,
            log_path=proc.log_file,
        )

    def check_config(self, config: Path) -> None:
        import subprocess

        proc = subprocess.run(
            [prometheus_binary("promtool"), "check", "config", str(config)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise StackError(f"promtool rejected {config}:\n{proc.stdout}{proc.stderr}")

    def running(self) -> bool:
        return self.process.running()

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                status: int = resp.status  # typeshed types urlopen's response as Any
                return status == 200
        except OSError:
            return False

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Run an instant PromQL query over the HTTP API; return its result vector."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.load(resp)
        if body.get("status") != "success":
            raise StackError(f"PromQL query failed: {promql}: {body}")
        return list(body["data"]["result"])

    def active_targets(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.url}/api/v1/targets?state=active", timeout=10) as resp:
            return list(json.load(resp)["data"]["activeTargets"])

    def stop(self) -> None:
        self.process.stop(timeout=30)
