"""Prometheus metrics, read from the run's counters when scraped: nothing is updated per
event, so the metrics cost nothing at 150k events/s."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

PREFIX = "pagestream_simulator"


@dataclass
class Snapshot:
    """The numbers a scrape reports; built by the runner from its live counters."""

    produced_by_collection: dict[str, int]
    malformed_by_kind: dict[str, int]
    duplicates: int
    late: int
    delivered: int
    failures_by_error: dict[str, int]
    in_flight: int
    rate: float


class SimulatorCollector(Collector):
    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        s = self.snapshot()
        produced = CounterMetricFamily(
            f"{PREFIX}_events_produced",
            "Valid events handed to the Kafka producer (first copies), by collection.",
            labels=["collection"],
        )
        for collection, count in sorted(s.produced_by_collection.items()):
            produced.add_metric([collection], count)
        yield produced
        malformed = CounterMetricFamily(
            f"{PREFIX}_malformed_produced",
            "Malformed records injected, by kind.",
            labels=["kind"],
        )
        for kind, count in sorted(s.malformed_by_kind.items()):
            malformed.add_metric([kind], count)
        yield malformed
        yield CounterMetricFamily(
            f"{PREFIX}_duplicates_produced", "Duplicate records (same bytes) sent.", s.duplicates
        )
        yield CounterMetricFamily(
            f"{PREFIX}_late_events_produced", "Events sent with a late event time.", s.late
        )
        yield CounterMetricFamily(
            f"{PREFIX}_records_delivered", "Records the broker acknowledged.", s.delivered
        )
        failures = CounterMetricFamily(
            f"{PREFIX}_delivery_failures",
            "Records whose delivery failed, by librdkafka error.",
            labels=["error"],
        )
        for error, count in sorted(s.failures_by_error.items()):
            failures.add_metric([error], count)
        yield failures
        yield GaugeMetricFamily(
            f"{PREFIX}_records_in_flight", "Records produced, not yet acknowledged.", s.in_flight
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_rate_records_per_second",
            "Records produced per second over the last second or so.",
            s.rate,
        )


class MetricsServer:
    """An HTTP /metrics endpoint with its own registry (never the process-global one, so
    several runs in one process do not collide)."""

    def __init__(self, port: int, snapshot: Callable[[], Snapshot], addr: str = "0.0.0.0") -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(SimulatorCollector(snapshot))
        self._server: WSGIServer
        self._server, self._thread = start_http_server(port, addr=addr, registry=self.registry)

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
