"""Throughput of `enrich_batch` on a realistic page-view batch, and CPU per record of the job's
whole Python pass (not a test).

A 200,000-row pandas frame shaped like one micro-batch of the tracker stream: ~20,000 visitors
(each with its own IP and one of a few hundred user agents, several views each), ~6,000 products
viewed with option query strings, referrers mixing internal pages, search engines, social
networks and direct visits, 3 % of events with UTM fields, 2 % with an e-mail address, two event
dates. It measures rows/s of the whole function (factorising, enriching distinct values, mapping
back, building the output frame), best and median of several runs (wall clock and CPU time) after one warm-up (the
warm-up pays the one-off loads: GeoIP tables, ua-parser regexes), and writes
bench/results/enrich_throughput.json.

The second measurement, `python_pass`, runs what each Spark Python worker runs per Arrow batch
(`transform.packed_sink_batches`: validate, enrich, key, pack as Arrow IPC) on simulator
records (the drain benchmark's fault rates), and splits its CPU time by step, min of the runs.

    uv run python bench/enrich_throughput.py [--rows 200000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import platform
import resource
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from pagestream_spark.enrich import enrich_batch, warm_up

RESULTS = Path(__file__).resolve().parent / "results" / "enrich_throughput.json"

_DESKTOP_TEMPLATES = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{major}.0.{build}.{patch} Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{major}.0.{build}.{patch} Safari/537.36 Edg/{major}.0.{build}.{patch}",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/{minor}.1 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:{major}.0) Gecko/20100101 Firefox/{major}.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{major}.0.{build}.{patch} Safari/537.36",
)
_MOBILE_TEMPLATES = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS {minor}_{patch} like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/{minor}.0 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android {android}; SM-G{model}F) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{major}.0.{build}.{patch} Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android {android}; Pixel {pixel}) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/{major}.0.{build}.{patch} Mobile Safari/537.36",
)
_TABLET_TEMPLATES = (
    "Mozilla/5.0 (iPad; CPU OS {minor}_{patch} like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/{minor}.0 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android {android}; SM-T{model}) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/{major}.0.{build}.{patch} Safari/537.36",
)
_BOT_USER_AGENTS = (
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "python-requests/2.31.0",
)
_STORE_HOSTS = (
    "www.glamira.fr",
    "www.glamira.de",
    "www.glamira.co.uk",
    "www.glamira.it",
    "www.glamira.es",
    "www.glamira.com",
)
_EXTERNAL_REFERRERS = (
    "https://www.google.com/",
    "https://www.google.fr/",
    "https://www.google.de/",
    "https://www.bing.com/search?q=ring",
    "https://duckduckgo.com/",
    "https://l.facebook.com/l.php?u=https%3A%2F%2Fwww.glamira.fr%2F",
    "https://www.instagram.com/",
    "https://t.co/abc123",
    "https://www.pinterest.fr/pin/123/",
    "https://www.idealo.de/preisvergleich/",
    "android-app://com.google.android.googlequicksearchbox/",
)


def _user_agent_pool(rng: np.random.Generator, size: int) -> list[str]:
    pool = []
    for _ in range(size):
        kind = rng.choice(["desktop", "mobile", "tablet"], p=[0.45, 0.45, 0.10])
        templates = {
            "desktop": _DESKTOP_TEMPLATES,
            "mobile": _MOBILE_TEMPLATES,
            "tablet": _TABLET_TEMPLATES,
        }[kind]
        template = templates[rng.integers(len(templates))]
        pool.append(
            template.format(
                major=rng.integers(100, 131),
                minor=rng.integers(12, 18),
                build=rng.integers(4000, 6800),
                patch=rng.integers(0, 200),
                android=rng.integers(8, 15),
                model=rng.integers(100, 999),
                pixel=rng.integers(3, 9),
            )
        )
    return pool + list(_BOT_USER_AGENTS)


def realistic_batch(rows: int, seed: int = 7) -> pd.DataFrame:
    """One micro-batch of page views with production-like cardinalities."""
    rng = np.random.default_rng(seed)
    visitors = max(rows // 10, 1)
    user_agents = _user_agent_pool(rng, 400)
    visitor_ua = np.array(user_agents, dtype=object)[rng.integers(len(user_agents), size=visitors)]
    # Public-looking IPv4 addresses (first octet 2-223, skipping 10/127), 1 % IPv6.
    first_octet = rng.choice(np.setdiff1d(np.arange(2, 224), [10, 100, 127, 169, 172, 192]))
    octets = rng.integers(0, 256, size=(visitors, 3))
    visitor_ip = np.array(
        [
            f"{rng.choice(first_octet)}.{a}.{b}.{c}"
            if rng.random() > 0.01
            else f"2a01:cb00:{a:x}::{c:x}"
            for a, b, c in octets
        ],
        dtype=object,
    )
    visitor_store = rng.integers(len(_STORE_HOSTS), size=visitors)

    # Zipf-like product popularity: most views on a few products, a long tail.
    row_visitor = rng.integers(visitors, size=rows)
    product = np.minimum(rng.zipf(1.3, size=rows), 6000)
    alloy = rng.choice(["white-375", "yellow-585", "red-750", "platinum"], size=rows)
    hosts = np.array(_STORE_HOSTS, dtype=object)[visitor_store[row_visitor]]
    current_url = [
        f"https://{host}/glamira-ring-{p}.html?alloy={a}"
        for host, p, a in zip(hosts, product, alloy, strict=True)
    ]
    utm_rows = rng.random(rows) < 0.03
    for position in np.flatnonzero(utm_rows):
        current_url[position] += "&utm_source=newsletter&utm_medium=email&utm_campaign=spring24"

    previous_product = np.minimum(rng.zipf(1.3, size=rows), 6000)
    kind = rng.choice(["internal", "external", "direct"], size=rows, p=[0.6, 0.25, 0.15])
    external = np.array(_EXTERNAL_REFERRERS, dtype=object)[
        rng.integers(len(_EXTERNAL_REFERRERS), size=rows)
    ]
    referrer = np.where(
        kind == "internal",
        # The page viewed before: a listing page or another product with its options.
        [
            f"https://{host}/category-{p % 40}/"
            if p % 3 == 0
            else f"https://{host}/glamira-ring-{p + 1}.html?alloy={a}"
            for host, p, a in zip(hosts, previous_product, alloy, strict=True)
        ],
        np.where(kind == "external", external, False),
    )
    email = np.where(
        rng.random(rows) < 0.02,
        [f"customer{v}@example.com" for v in row_visitor],
        "",
    )
    event_date = np.where(rng.random(rows) < 0.9, dt.date(2024, 6, 4), dt.date(2024, 6, 3))
    return pd.DataFrame(
        {
            "id": [f"{i:024x}" for i in range(rows)],
            "ip": visitor_ip[row_visitor],
            "user_agent": visitor_ua[row_visitor],
            "referrer_url": referrer.astype(object),
            "current_url": np.array(current_url, dtype=object),
            "email_address": email.astype(object),
            "utm_source": np.where(utm_rows, "newsletter", False).astype(object),
            "utm_medium": np.where(utm_rows, "email", False).astype(object),
            "event_date": event_date.astype(object),
            "product_id": product.astype(str).astype(object),
            "store_id": (visitor_store[row_visitor] + 1).astype(str).astype(object),
        }
    )


def simulator_batch(records: int) -> pa.RecordBatch:
    """A raw Kafka batch of simulator records, as the job's Python pass receives it: 1 %
    duplicates, 0.2 % malformed records, 5 % bots (the drain benchmark's rates)."""
    from pagestream_simulator.faults import FaultConfig, FaultInjector, Tally
    from pagestream_simulator.generator import EventGenerator, GeneratorConfig

    generator = EventGenerator(GeneratorConfig(seed=42, start_time=time.time() - 3600))
    injector = FaultInjector(
        FaultConfig(duplicate_rate=0.01, malformed_rate=0.002), seed=42, tally=Tally()
    )
    values = [value for _, value, _ in itertools.islice(injector.records(generator), records)]
    now_us = int(time.time() * 1_000_000)
    return pa.RecordBatch.from_pydict(
        {
            "value": pa.array(values, pa.binary()),
            "topic": pa.array(["page_views"] * len(values)),
            "partition": pa.array([0] * len(values), pa.int32()),
            "offset": pa.array(range(len(values)), pa.int64()),
            "timestamp": pa.array([now_us] * len(values), pa.timestamp("us")),
        }
    )


def python_pass(records: int, repeat: int) -> dict[str, object]:
    """CPU µs per record of each step of the Python pass, min over ``repeat`` runs."""
    from pagestream_spark.options import ProcessingOptions
    from pagestream_spark.transform import (
        classify_arrays,
        packed_sink_batches,
        prepare_batches,
        sink_row_batch,
    )

    raw = simulator_batch(records)
    options = ProcessingOptions(pii_key=b"bench-key")
    now = int(time.time())

    def cpu_us_per_record(step: Callable[[], object]) -> float:
        best = float("inf")
        for _ in range(repeat):
            started = time.process_time()
            step()
            best = min(best, time.process_time() - started)
        return round(best / raw.num_rows * 1e6, 2)

    def whole() -> None:
        for _ in packed_sink_batches(iter([raw]), now=now, options=options):
            pass

    whole()  # warm: imports, GeoIP tables, user-agent regexes, URL memos
    prepared = next(prepare_batches(iter([raw]), now=now, options=options))
    steps = {
        "classify": cpu_us_per_record(lambda: classify_arrays(raw, now)),
        "classify_and_enrich": cpu_us_per_record(
            lambda: next(prepare_batches(iter([raw]), now=now, options=options))
        ),
        "keys": cpu_us_per_record(lambda: sink_row_batch(prepared)),
        "whole_pass": cpu_us_per_record(whole),
    }
    return {
        "records": raw.num_rows,
        "runs": repeat,
        "cpu_us_per_record": {
            "classify": steps["classify"],
            "enrich_with_pandas_round_trip": round(
                steps["classify_and_enrich"] - steps["classify"], 2
            ),
            "keys": steps["keys"],
            "whole_pass": steps["whole_pass"],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pass-records", type=int, default=50_000)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    started = time.perf_counter()
    warm_up()
    enrich_batch(realistic_batch(1000, seed=1), pii_key=b"k", anonymize_ip=True, hash_email=True)
    warm_up_seconds = time.perf_counter() - started

    batch = realistic_batch(args.rows)
    cardinality = {
        column: int(batch[column].nunique(dropna=False))
        for column in ("ip", "user_agent", "referrer_url", "current_url", "email_address")
    }
    seconds, cpu_seconds = [], []
    load_before = os.getloadavg()[0]
    for _ in range(args.repeat):
        started, cpu_started = time.perf_counter(), time.process_time()
        enriched = enrich_batch(batch, pii_key=b"bench-key", anonymize_ip=True, hash_email=True)
        seconds.append(time.perf_counter() - started)
        cpu_seconds.append(time.process_time() - cpu_started)
    assert len(enriched) == args.rows

    result = {
        "benchmark": "enrich_batch on one realistic pandas batch",
        "command": "uv run python bench/"
        + " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).name, *sys.argv[1:]]),
        "rows": args.rows,
        "distinct_values": cardinality,
        "runs": args.repeat,
        "seconds_per_run": [round(s, 4) for s in seconds],
        "rows_per_second_best": round(args.rows / min(seconds)),
        "rows_per_second_median": round(args.rows / statistics.median(seconds)),
        # The 2 cores are shared with other work: CPU time is the steadier figure.
        "cpu_seconds_per_run": [round(s, 4) for s in cpu_seconds],
        "rows_per_cpu_second_median": round(args.rows / statistics.median(cpu_seconds)),
        "load_average_1m_before": round(load_before, 2),
        "warm_up_seconds": round(warm_up_seconds, 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "bot_share": round(float(enriched["is_bot"].mean()), 4),
        "python_pass": python_pass(args.pass_records, args.repeat),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "pandas": pd.__version__,
            "numpy": np.__version__,
        },
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
