"""The local stack as a whole: which components exist, their ports, starting and stopping them.

Ports are picked free on first start and remembered in ``<state>/stack.json``, so a restarted
stack comes back where clients expect it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pagestream.stack.errors import StackError
from pagestream.stack.kafka import Kafka
from pagestream.stack.kube import KubeControlPlane
from pagestream.stack.paths import StackPaths
from pagestream.stack.postgres import Postgres
from pagestream.stack.process import free_port, port_open
from pagestream.stack.prometheus import Prometheus

log = logging.getLogger(__name__)

# Start order; stop goes the other way.
COMPONENTS = ("kafka", "postgres", "prometheus", "kube")
DEFAULT_COMPONENTS = ("kafka", "postgres", "prometheus")


class Component(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def healthy(self) -> bool: ...
    def running(self) -> bool: ...


@dataclass
class LocalStack:
    paths: StackPaths
    durable_postgres: bool = True
    with_controller_manager: bool = False
    ports: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            self.ports = json.loads(self._state_file.read_text())["ports"] | self.ports
        except FileNotFoundError:
            pass

    @property
    def _state_file(self) -> Path:
        return self.paths.state / "stack.json"

    def _port(self, key: str) -> int:
        if key not in self.ports:
            self.ports[key] = free_port()
            self.paths.state.mkdir(parents=True, exist_ok=True)
            self._state_file.write_text(json.dumps({"ports": self.ports}, indent=2) + "\n")
        return self.ports[key]

    def kafka(self) -> Kafka:
        return Kafka(
            self.paths, port=self._port("kafka"), controller_port=self._port("kafka_controller")
        )

    def postgres(self) -> Postgres:
        return Postgres(self.paths, port=self._port("postgres"), durable=self.durable_postgres)

    def prometheus(self) -> Prometheus:
        return Prometheus(self.paths, port=self._port("prometheus"))

    def kube(self) -> KubeControlPlane:
        return KubeControlPlane(
            self.paths,
            apiserver_port=self._port("kube_apiserver"),
            etcd_port=self._port("etcd"),
            etcd_peer_port=self._port("etcd_peer"),
            controller_manager_port=self._port("kube_controller_manager")
            if self.with_controller_manager
            else None,
        )

    def component(self, name: str) -> Component:
        factories: dict[str, Callable[[], Component]] = {
            "kafka": self.kafka,
            "postgres": self.postgres,
            "prometheus": self.prometheus,
            "kube": self.kube,
        }
        if name not in factories:
            raise StackError(
                f"unknown component {name!r}", hint=f"choose from {', '.join(COMPONENTS)}"
            )
        return factories[name]()

    def start(self, name: str) -> Component:
        comp = self.component(name)
        if comp.healthy():
            log.info("%s already running", name)
            return comp
        if not comp.running():
            self._reclaim_ports(name)
            comp = self.component(name)
        comp.start()  # idempotent: a process that is still starting is waited for, not doubled
        return comp

    def _reclaim_ports(self, name: str) -> None:
        """A remembered port that something else took meanwhile is replaced by a free one."""
        prefix = {"kube": ("kube_apiserver", "etcd", "kube_controller_manager")}.get(name, (name,))
        changed = False
        for key in list(self.ports):
            if key.startswith(prefix) and port_open(self.ports[key]):
                log.warning("port %d for %s is taken; choosing another", self.ports[key], key)
                del self.ports[key]
                changed = True
        if changed:
            self._state_file.write_text(json.dumps({"ports": self.ports}, indent=2) + "\n")

    def up(self, names: tuple[str, ...] = DEFAULT_COMPONENTS) -> None:
        for name in sorted(names, key=COMPONENTS.index):
            self.start(name)

    def down(self, names: tuple[str, ...] | None = None) -> None:
        for name in sorted(names or self.known(), key=COMPONENTS.index, reverse=True):
            self.component(name).stop()

    def known(self) -> tuple[str, ...]:
        """Components this stack has started at least once (their ports are remembered)."""
        keys = {"kube": "kube_apiserver"}
        return tuple(name for name in COMPONENTS if keys.get(name, name) in self.ports)

    def status(self) -> dict[str, bool]:
        return {name: self.component(name).healthy() for name in self.known()}
