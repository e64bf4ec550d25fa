"""The metrics exposition, read from a snapshot at scrape time."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from pagestream_simulator.metrics import SimulatorCollector, Snapshot


def test_every_metric_is_exposed_from_the_snapshot() -> None:
    snapshot = Snapshot(
        produced_by_collection={"view_product_detail": 7, "checkout": 2},
        malformed_by_kind={"truncated_json": 3},
        duplicates=4,
        late=5,
        delivered=20,
        failures_by_error={"_MSG_TIMED_OUT": 1},
        in_flight=6,
        rate=1234.5,
    )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SimulatorCollector(lambda: snapshot))
    text = generate_latest(registry).decode()
    expected = [
        'pagestream_simulator_events_produced_total{collection="view_product_detail"} 7.0',
        'pagestream_simulator_events_produced_total{collection="checkout"} 2.0',
        'pagestream_simulator_malformed_produced_total{kind="truncated_json"} 3.0',
        "pagestream_simulator_duplicates_produced_total 4.0",
        "pagestream_simulator_late_events_produced_total 5.0",
        "pagestream_simulator_records_delivered_total 20.0",
        'pagestream_simulator_delivery_failures_total{error="_MSG_TIMED_OUT"} 1.0',
        "pagestream_simulator_records_in_flight 6.0",
        "pagestream_simulator_rate_records_per_second 1234.5",
    ]
    for line in expected:
        assert line in text.splitlines(), line
