"""``pagestream-simulate``: realistic shop traffic (or a replayed capture) into a Kafka topic.

The command line and the environment are read here and only here, into a validated
:class:`RunConfig`; everything below takes that object.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from pagestream_common.logs import configure_logging
from pagestream_simulator.faults import MALFORMED_KINDS, FaultConfig
from pagestream_simulator.generator import GeneratorConfig
from pagestream_simulator.producer import COMPRESSION_TYPES, ProducerSettings, TopicMissingError
from pagestream_simulator.replay import ReplayConfig
from pagestream_simulator.runner import RunConfig, RunResult, run

log = logging.getLogger("pagestream_simulator")

BOOTSTRAP_ENV = "PAGESTREAM_KAFKA_BOOTSTRAP_SERVERS"
TOPIC_ENV = "PAGESTREAM_KAFKA_TOPIC"
DEFAULT_TOPIC = "pagestream.events"
# Simulated traffic level when --rate does not set it (as fast as possible): one simulated
# day is ~8.6M events.
DEFAULT_SIM_RATE = 100.0
MAX_DEFAULT_SIM_RATE = 10_000.0

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


class UsageError(ValueError):
    """A command-line value is invalid; the message names the option."""


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``2h``, ``1d``, ``250ms`` → seconds."""
    match = _DURATION.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (examples: 90s, 15m, 2h)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_start_time(text: str) -> float:
    """Epoch seconds, or an ISO 8601 date/time (UTC unless it names an offset)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"not a time: {text!r} (epoch seconds or ISO 8601, e.g. 2026-11-23T08:00:00Z)"
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _rate_fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be within [0, 1], got {text}")
    return value


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def build_parser() -> argparse.ArgumentParser:
    kinds = ", ".join(MALFORMED_KINDS)
    parser = argparse.ArgumentParser(
        prog="pagestream-simulate",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Send realistic shop tracker events (docs/event-contract.md) to a Kafka topic:\n"
            "visitors with devices and sessions, long-tail product popularity, country stores\n"
            "with plausible IPs, desktop/mobile/tablet browsers and crawlers, referrers and\n"
            "UTM campaigns, a daily rhythm in simulated time, and optional faults. Or replay\n"
            "a captured JSON-lines file as-is."
        ),
        epilog=(
            "examples:\n"
            "  pagestream-simulate --rate 500                       # live traffic, until Ctrl-C\n"
            "  pagestream-simulate --max-speed --count 1000000 --seed 7\n"
            "  pagestream-simulate --count 50000 --start-time 2026-11-01 --sim-rate 5 \\\n"
            "      --duplicate-rate 0.01 --malformed-rate 0.005 --late-rate 0.02 --late-by 3h \\\n"
            "      --manifest truth.json\n"
            "  pagestream-simulate --replay capture.jsonl --keep-timing --speedup 60\n\n"
            "exit status: 0 when every record sent was delivered; 1 when some were not;\n"
            "2 for invalid options. SIGINT/SIGTERM stop sending, flush, and print the summary.\n\n"
            f"malformed kinds: {kinds}"
        ),
    )
    kafka = parser.add_argument_group("kafka")
    kafka.add_argument(
        "--bootstrap-servers",
        help=f"Kafka bootstrap servers (default: ${BOOTSTRAP_ENV}, else 127.0.0.1:9092)",
    )
    kafka.add_argument("--topic", help=f"topic (default: ${TOPIC_ENV}, else {DEFAULT_TOPIC})")
    kafka.add_argument(
        "--create-topic",
        metavar="PARTITIONS",
        type=int,
        help="create the topic with this many partitions if it does not exist",
    )
    kafka.add_argument("--compression", choices=COMPRESSION_TYPES, default="lz4")
    kafka.add_argument("--linger-ms", type=int, default=20, help="batching delay (default 20)")
    kafka.add_argument(
        "--batch-bytes", type=int, default=1_048_576, help="max batch size (default 1 MiB)"
    )
    kafka.add_argument(
        "--producer-config",
        metavar="KEY=VALUE",
        type=_key_value,
        action="append",
        default=[],
        help="extra librdkafka setting, repeatable (e.g. security.protocol=SASL_SSL)",
    )
    kafka.add_argument(
        "--flush-timeout",
        type=parse_duration,
        default=30.0,
        help="how long to wait for outstanding deliveries at the end (default 30s)",
    )

    amount = parser.add_argument_group("how much, how fast")
    amount.add_argument(
        "--rate",
        type=float,
        default=100.0,
        help="records per second (default 100); 0 means as fast as possible",
    )
    amount.add_argument(
        "--max-speed", action="store_true", help="as fast as possible (same as --rate 0)"
    )
    amount.add_argument("--count", type=int, help="stop after this many events (or lines)")
    amount.add_argument("--duration", type=parse_duration, help="stop after this long (e.g. 10m)")

    gen = parser.add_argument_group("traffic")
    gen.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    gen.add_argument(
        "--start-time",
        type=parse_start_time,
        help=(
            "simulate time from this moment (epoch seconds or ISO 8601) instead of now; "
            "with a seed, runs are byte-for-byte repeatable"
        ),
    )
    gen.add_argument(
        "--sim-rate",
        type=float,
        help=(
            "average events per simulated second (default: --rate when pacing, at most "
            f"{MAX_DEFAULT_SIM_RATE:g}, else {DEFAULT_SIM_RATE:g}); sets how much simulated "
            "time the events span, and how many visitors are on the site at once"
        ),
    )
    gen.add_argument(
        "--daily-rhythm",
        action=argparse.BooleanOptionalAction,
        help="vary traffic by the stores' local hour (default: on with --start-time)",
    )
    gen.add_argument(
        "--bot-share",
        type=_rate_fraction,
        default=0.05,
        help="share of events from crawlers (default 0.05)",
    )
    gen.add_argument("--catalogue-size", type=int, default=5000, help="products (default 5000)")

    faults = parser.add_argument_group("fault injection")
    faults.add_argument(
        "--duplicate-rate",
        type=_rate_fraction,
        default=0.0,
        help="share of events sent a second time, same bytes, a few records later",
    )
    faults.add_argument(
        "--malformed-rate",
        type=_rate_fraction,
        default=0.0,
        help="share of events replaced by a malformed record (see kinds below)",
    )
    faults.add_argument(
        "--late-rate",
        type=_rate_fraction,
        default=0.0,
        help="share of events whose event time is --late-by behind",
    )
    faults.add_argument(
        "--late-by", type=parse_duration, default=3600.0, help="how late (default 1h)"
    )
    faults.add_argument(
        "--clock-skew",
        type=parse_duration,
        default=0.0,
        help="each device's clock is off by up to ± this much (default 0)",
    )
    faults.add_argument(
        "--faults-log",
        type=Path,
        metavar="FILE",
        help="write one JSON line per injected fault (record position, kind, event id)",
    )

    replay = parser.add_argument_group("replay")
    replay.add_argument(
        "--replay",
        type=Path,
        metavar="FILE.jsonl",
        help="send each line of this file as one record, as-is (malformed lines included)",
    )
    replay.add_argument(
        "--keep-timing",
        action="store_true",
        help="release lines at their time_stamp spacing (needs --replay)",
    )
    replay.add_argument(
        "--speedup", type=float, default=1.0, help="divide --keep-timing gaps by this"
    )

    out = parser.add_argument_group("output")
    out.add_argument(
        "--manifest",
        type=Path,
        metavar="FILE",
        help="write the run summary and ground truth as JSON",
    )
    out.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    out.add_argument("--metrics-addr", default="0.0.0.0", help="metrics bind address")
    out.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        help="progress bar (default: when stderr is a terminal)",
    )
    out.add_argument("--log-level", default="INFO")
    return parser


def config_from_args(
    args: argparse.Namespace, env: Mapping[str, str], now: float | None = None
) -> RunConfig:
    """The one place options and environment become a validated RunConfig."""
    rate = 0.0 if args.max_speed else args.rate
    if args.keep_timing and args.replay is None:
        raise UsageError("--keep-timing needs --replay")
    if args.replay is not None and not args.replay.is_file():
        raise UsageError(f"--replay: no such file: {args.replay}")
    if args.replay is not None and args.keep_timing:
        rate = 0.0  # the file's own timing paces the run
    simulating = args.start_time is not None
    if args.sim_rate is not None:
        sim_rate = args.sim_rate
    else:
        # Visitors on the site at once grow with the simulated rate (~30 open sessions per
        # event/s, a few hundred bytes each): past the cap, simulated time runs slower than
        # the wall clock instead of memory running out.
        sim_rate = min(rate, MAX_DEFAULT_SIM_RATE) if rate else DEFAULT_SIM_RATE
    now = time.time() if now is None else now
    start_time = args.start_time if simulating else now
    if not simulating and rate == 0 and args.count:
        # As fast as possible, a count of events spans count / sim_rate simulated seconds:
        # end them at about now rather than far in the future.
        start_time = now - args.count / sim_rate
    daily_rhythm = args.daily_rhythm if args.daily_rhythm is not None else simulating
    try:
        producer = ProducerSettings(
            bootstrap_servers=args.bootstrap_servers or env.get(BOOTSTRAP_ENV, "127.0.0.1:9092"),
            topic=args.topic or env.get(TOPIC_ENV, DEFAULT_TOPIC),
            compression=args.compression,
            linger_ms=args.linger_ms,
            batch_bytes=args.batch_bytes,
            extra=tuple(args.producer_config),
        )
        return RunConfig(
            producer=producer,
            generator=GeneratorConfig(
                seed=args.seed,
                start_time=start_time,
                sim_rate=sim_rate,
                daily_rhythm=daily_rhythm,
                bot_share=args.bot_share,
                clock_skew_seconds=args.clock_skew,
                catalogue_size=args.catalogue_size,
            ),
            faults=FaultConfig(
                duplicate_rate=args.duplicate_rate,
                malformed_rate=args.malformed_rate,
                late_rate=args.late_rate,
                late_by_seconds=round(args.late_by),
            ),
            rate=rate,
            # The simulated clock is the wall clock: hold events to it (see RunConfig.live).
            live=bool(rate) and not simulating and args.replay is None,
            count=args.count,
            duration=args.duration,
            replay=(
                ReplayConfig(args.replay, keep_timing=args.keep_timing, speedup=args.speedup)
                if args.replay is not None
                else None
            ),
            create_topic_partitions=args.create_topic,
            metrics_port=args.metrics_port,
            metrics_addr=args.metrics_addr,
            manifest=args.manifest,
            faults_log=args.faults_log,
            progress=args.progress,
            flush_timeout=args.flush_timeout,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def summary_lines(result: RunResult) -> list[str]:
    truth = result.ground_truth
    lines = [
        f"{result.mode}: sent {result.records_sent} records to {result.topic} in "
        f"{result.elapsed_seconds:.1f}s ({result.records_per_second:,.0f}/s)"
        + (" [interrupted]" if result.interrupted else ""),
        f"delivered {result.delivered}, failed {result.failed}, undelivered {result.undelivered}",
    ]
    if result.failures_by_error:
        lines.append(f"failures: {result.failures_by_error}")
    if result.mode == "generate":
        lines.append(
            f"events {truth['events_generated']}: valid {truth['valid_events']} "
            f"(page views {truth['page_views']}, bots {truth['bot_events']}), "
            f"duplicates {truth['duplicates_sent']}, malformed {truth['malformed']}, "
            f"late {truth['late_events']}"
        )
    else:
        lines.append(f"lines {truth['lines_sent']}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    try:
        config = config_from_args(args, os.environ)
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2

    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping: flushing what was sent", extra={"signal": signal.Signals(signum).name})
        stop.set()

    previous = {}
    on_main_thread = threading.current_thread() is threading.main_thread()
    if on_main_thread:  # signal handlers can only be installed there
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, request_stop)
    try:
        result = run(config, stop)
    except TopicMissingError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    for line in summary_lines(result):
        print(line, file=sys.stderr)
    if not result.ok:
        log.error("not every record was delivered", extra={"undelivered": result.undelivered})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
