"""Prometheus is real: it scrapes a prometheus_client endpoint and answers PromQL over HTTP."""

from __future__ import annotations

import time
import uuid

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from pagestream.stack.process import free_port
from pagestream.stack.prometheus import Prometheus

pytestmark = pytest.mark.prometheus


def test_scrapes_a_client_endpoint_and_answers_promql(prometheus: Prometheus) -> None:
    registry = CollectorRegistry()
    marker = uuid.uuid4().hex[:8]
    gauge = Gauge(
        "pagestream_probe_value", "a value the test reads back", ["run"], registry=registry
    )
    gauge.labels(run=marker).set(42.5)
    counter = Counter("pagestream_probe_events", "events the probe saw", registry=registry)
    counter.inc(7)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        prometheus.set_targets("probe", [f"127.0.0.1:{port}"])
        deadline = time.monotonic() + 60
        result: list = []
        while time.monotonic() < deadline:
            result = prometheus.query(f'pagestream_probe_value{{run="{marker}"}}')
            if result:
                break
            time.sleep(0.5)
        assert result, "Prometheus never scraped the probe endpoint"
        assert float(result[0]["value"][1]) == 42.5
        assert result[0]["metric"]["job"] == "probe"

        total = prometheus.query('pagestream_probe_events_total{job="probe"}')
        assert [float(r["value"][1]) for r in total] == [7.0]
        targets = [t for t in prometheus.active_targets() if t["labels"]["job"] == "probe"]
        assert [t["health"] for t in targets] == ["up"]
    finally:
        prometheus.set_targets("probe", [])
        server.shutdown()
        server.server_close()
        thread.join(5)
