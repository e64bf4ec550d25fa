"""One simulator run: generate (or replay) records, inject faults, send them, account for
every record, and return a :class:`RunResult` that doubles as the ground-truth manifest."""

from __future__ import annotations

import gc
import itertools
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import orjson

from pagestream_simulator.faults import MALFORMED_KINDS, FaultConfig, FaultInjector, Tally
from pagestream_simulator.generator import EventGenerator, GeneratorConfig
from pagestream_simulator.metrics import MetricsServer, Snapshot
from pagestream_simulator.producer import (
    KafkaSink,
    ProducerSettings,
    check_topic,
    ensure_topic,
)
from pagestream_simulator.replay import ReplayConfig, ReplayTally, replay_records

log = logging.getLogger(__name__)

T = TypeVar("T")

# Live runs sleep this long past an event's time before releasing it, so the events due in
# that window go out together: one sleep per 5 ms rather than one per event, at the cost of
# sending up to 5 ms late (never early).
HOLD_SLACK_SECONDS = 0.005


@dataclass(frozen=True)
class RunConfig:
    producer: ProducerSettings
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    faults: FaultConfig = field(default_factory=FaultConfig)
    # Records per second; 0 sends as fast as the producer takes them.
    rate: float = 0.0
    # The simulated clock is the wall clock (generated traffic, paced, no --start-time):
    # start with the sessions open that a site has in steady state, and send no event
    # before its event time. Deliberate faults (late events, clock skew) keep their offsets.
    live: bool = False
    # Stop after this many generated events (duplicates come on top), or after this long.
    count: int | None = None
    duration: float | None = None
    replay: ReplayConfig | None = None
    create_topic_partitions: int | None = None
    metrics_port: int | None = None
    metrics_addr: str = "0.0.0.0"
    manifest: Path | None = None
    faults_log: Path | None = None
    # None: show a progress bar when stderr is a terminal.
    progress: bool | None = None
    flush_timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.rate < 0:
            raise ValueError(f"rate must be >= 0, got {self.rate}")
        if self.count is not None and self.count < 0:
            raise ValueError(f"count must be >= 0, got {self.count}")
        if self.duration is not None and self.duration <= 0:
            raise ValueError(f"duration must be positive, got {self.duration}")
        if self.live and (self.replay is not None or not self.rate):
            raise ValueError("live mode is for paced generated traffic (a rate, no --replay)")
        if self.replay is not None and self.faults.any:
            raise ValueError("fault injection does not apply to --replay (it sends lines as-is)")
        if self.create_topic_partitions is not None and self.create_topic_partitions < 1:
            raise ValueError("partitions must be >= 1")
        if self.flush_timeout <= 0:
            raise ValueError("flush_timeout must be positive")


@dataclass
class RunResult:
    """Everything sent, and what became of it. ``ground_truth`` is what a correct consumer
    of the topic must find (see docs/event-contract.md)."""

    topic: str
    mode: str  # "generate" or "replay"
    records_sent: int
    delivered: int
    failed: int
    failures_by_error: dict[str, int]
    interrupted: bool
    elapsed_seconds: float
    ground_truth: dict[str, Any]
    config: dict[str, Any]

    @property
    def undelivered(self) -> int:
        """Records sent but not acknowledged: failed, or still pending when flushing gave up."""
        return self.records_sent - self.delivered

    @property
    def ok(self) -> bool:
        return self.undelivered == 0

    @property
    def records_per_second(self) -> float:
        return self.records_sent / self.elapsed_seconds if self.elapsed_seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["undelivered"] = self.undelivered
        out["records_per_second"] = round(self.records_per_second, 1)
        return out

    def to_json(self) -> bytes:
        return orjson.dumps(
            self.to_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS, default=str
        )


def generation_truth(tally: Tally, generator: EventGenerator) -> dict[str, Any]:
    page_views = tally.valid_by_collection.get("view_product_detail", 0)
    return {
        "events_generated": tally.events_generated,
        "valid_events": tally.valid_events,
        "valid_by_collection": dict(sorted(tally.valid_by_collection.items())),
        "page_views": page_views,
        "bot_events": tally.valid_bot_events,
        "bot_page_views": tally.valid_bot_page_views,
        "human_page_views": page_views - tally.valid_bot_page_views,
        "duplicates_sent": tally.duplicates_sent,
        "late_events": tally.late_events,
        "malformed": tally.malformed,
        "malformed_by_kind": dict(sorted(tally.malformed_by_kind.items())),
        "dead_letters_by_reason": tally.dead_letters_by_reason(),
        # What the streaming job must record for this run (with bot filtering on, its
        # default): see docs/event-contract.md, "How the job classifies records".
        "job_outcomes": {
            "stored_page_views": page_views - tally.valid_bot_page_views,
            "stored_other_events": tally.valid_events
            - page_views
            - (tally.valid_bot_events - tally.valid_bot_page_views),
            "bots": tally.valid_bot_events,
            "duplicates": tally.duplicates_sent,
            "dead_letters": tally.dead_letters_by_reason(),
        },
        "sessions_started": generator.sessions_started,
        "bot_sessions_started": generator.bot_sessions_started,
        "devices": generator.devices_created,
        "simulated_time": {"start": generator.start_time, "end": generator.now},
    }


def hold_until_due(
    events: Iterable[T],
    due: Callable[[], float],
    clock: Callable[[], float],
    wait: Callable[[float], bool],
    slack: float = HOLD_SLACK_SECONDS,
) -> Iterator[T]:
    """Pass each event on no earlier than its time: ``due()``, read once the event is drawn,
    against ``clock()``. ``wait(seconds)`` sleeps and returns True when the run is stopping;
    the event held then is dropped, never counted. Waits ``slack`` past the due time (see
    HOLD_SLACK_SECONDS); a wait that returns early is resumed."""
    for event in events:
        at = due()
        now = clock()
        while now < at:
            if wait(at - now + slack):
                return
            now = clock()
        yield event


class _Pacer:
    """Holds the send rate at ``rate`` records/s by sleeping between chunks of records."""

    def __init__(self, rate: float, stop: threading.Event, since: float = 0.0) -> None:
        """``since``: seconds already on the clock at the start (their records are due)."""
        self.rate = rate
        self.stop = stop
        self.started = time.monotonic() - since

    def wait(self, sent: int) -> None:
        if self.rate:
            due = self.started + sent / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                self.stop.wait(delay)


class _Progress:
    """A rich progress bar on stderr, only when it is a terminal (never in logs or CI)."""

    def __init__(self, enabled: bool | None, total: int | None) -> None:
        if enabled is None:
            enabled = sys.stderr.isatty()
        self.bar: Any = None
        if enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.bar = Progress(
                TextColumn("[bold]simulate"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:>9.0f} rec/s  delivered {task.fields[delivered]}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),  # stdout stays clean for pipes
                transient=False,
            )
            self.task = self.bar.add_task("send", total=total, rate=0.0, delivered=0)
            self.bar.start()

    def update(self, sent: int, rate: float, delivered: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=sent, rate=rate, delivered=delivered)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def run(config: RunConfig, stop: threading.Event | None = None) -> RunResult:
    """Send records until the count, the duration, the replay file or ``stop`` ends the run;
    then flush, and report. Setting ``stop`` (what SIGINT/SIGTERM do) ends it cleanly."""
    stop = stop or threading.Event()
    settings = config.producer
    if config.create_topic_partitions is not None:
        created = ensure_topic(
            settings.bootstrap_servers,
            settings.topic,
            config.create_topic_partitions,
            # The producer's own settings are not the admin client's: only the connection's.
            client_config=dict(settings.extra),
        )
        log.info("topic ready", extra={"topic": settings.topic, "topic_created": created})

    sink = KafkaSink(settings)
    partitions = check_topic(sink.producer, settings.topic)
    log.info("sending", extra={"topic": settings.topic, "partitions": partitions})
    tally = Tally()
    replay_tally = ReplayTally()
    generator: EventGenerator | None = None
    rate_now = 0.0

    with ExitStack() as cleanup:
        fault_log_file: IO[bytes] | None = None
        if config.replay is not None:
            records: Iterator[tuple[bytes, bytes, str]] = replay_records(
                config.replay, replay_tally, stop
            )
            if config.count is not None:
                records = itertools.islice(records, config.count)
        else:
            generator = EventGenerator(config.generator)
            events: Iterator[Any] = generator
            if config.live:
                events = hold_until_due(
                    generator, lambda: generator.now, time.time, stop.wait, HOLD_SLACK_SECONDS
                )
            if config.count is not None:
                events = itertools.islice(generator, config.count)
            injector = FaultInjector(config.faults, config.generator.seed, tally)
            if config.faults_log is not None:
                fault_log_file = cleanup.enter_context(config.faults_log.open("wb"))
                write = fault_log_file.write
                injector.fault_log = lambda entry: write(orjson.dumps(entry) + b"\n")
            records = injector.records(events)

        def snapshot() -> Snapshot:
            produced = (
                dict(replay_tally.by_collection)
                if config.replay is not None
                else dict(tally.valid_by_collection)
            )
            return Snapshot(
                produced_by_collection=produced,
                malformed_by_kind=dict(tally.malformed_by_kind),
                duplicates=tally.duplicates_sent,
                late=tally.late_events,
                delivered=sink.counts.delivered,
                failures_by_error=dict(sink.counts.failures_by_error),
                in_flight=sink.in_flight,
                rate=rate_now,
            )

        if config.metrics_port is not None:
            server = MetricsServer(config.metrics_port, snapshot, config.metrics_addr)
            cleanup.callback(server.close)
            log.info("metrics endpoint up", extra={"port": server.port})

        progress = _Progress(config.progress, config.count)
        cleanup.callback(progress.close)
        since = 0.0
        if config.live:
            assert generator is not None
            _warm_start(generator, config.rate)
            # The simulated clock runs from the end of the warm-up: count the rate from there
            # too, or the events due in between would be a backlog that a cap equal to the
            # generator's own rate never lets drain (every event that much late, for good).
            since = max(0.0, time.time() - generator.start_time)
        pacer = _Pacer(config.rate, stop, since)
        # Check the clock, the stop flag and the pacing every `chunk` records: often enough
        # for smooth pacing, rarely enough to cost nothing at full speed.
        chunk = max(1, min(2_000, int(config.rate / 200))) if config.rate else 2_000
        deadline = None if config.duration is None else time.monotonic() + config.duration
        started = time.monotonic()
        window_start, window_sent = started, 0
        sent = 0
        next_check = chunk
        warned_ahead = False
        produce = sink.producer.produce
        topic = settings.topic
        # The generator allocates a dict per event and keeps long-lived session objects, but
        # makes no reference cycles (refcounting frees each event): freeze what exists and
        # let the cycle collector run rarely. Measured: generation ~20% faster than with
        # the default thresholds, as fast as with the collector off.
        gc.freeze()
        old_thresholds = gc.get_threshold()
        gc.set_threshold(500_000, 100, 100)
        try:
            for key, value, _label in records:
                try:
                    produce(topic, value, key)
                except BufferError:
                    if not sink.send_when_room(key, value, give_up=stop.is_set):
                        # Stopped while the broker takes nothing: this record is not sent
                        # (the tally has counted it; the run fails on undelivered anyway).
                        break
                sent += 1
                if sent >= next_check:
                    next_check = sent + chunk
                    sink.poll(0)
                    now = time.monotonic()
                    if now - window_start >= 1.0:
                        rate_now = (sent - window_sent) / (now - window_start)
                        window_start, window_sent = now, sent
                        progress.update(sent, rate_now, sink.counts.delivered)
                    if stop.is_set() or (deadline is not None and now >= deadline):
                        break
                    if generator is not None and not warned_ahead:
                        warned_ahead = _warn_if_ahead(generator)
                    pacer.wait(sent)
                    if stop.is_set():
                        break
        finally:
            gc.set_threshold(*old_thresholds)
            gc.unfreeze()
            interrupted = stop.is_set()
            pending = sink.flush(config.flush_timeout)
            sink.poll(0)  # serve the last log events, which librdkafka would print at exit
            if pending:
                log.error(
                    "records still undelivered after flush timeout",
                    extra={"pending": pending, "timeout_s": config.flush_timeout},
                )
                sink.purge()
            elapsed = time.monotonic() - started
            progress.update(sent, sent / elapsed if elapsed else 0.0, sink.counts.delivered)

    if config.replay is not None:
        truth: dict[str, Any] = {
            "lines_sent": replay_tally.lines,
            "by_collection": dict(sorted(replay_tally.by_collection.items())),
        }
        mode = "replay"
    else:
        assert generator is not None
        truth = generation_truth(tally, generator)
        if config.live:
            # Sessions already on the site at the start: their later events are in the
            # counts above, their earlier ones were never sent.
            truth["open_sessions_at_start"] = generator.open_sessions_at_start
        mode = "generate"
    result = RunResult(
        topic=settings.topic,
        mode=mode,
        records_sent=sent,
        delivered=sink.counts.delivered,
        failed=sink.counts.failed,
        failures_by_error=dict(sink.counts.failures_by_error),
        interrupted=interrupted,
        elapsed_seconds=round(elapsed, 3),
        ground_truth=truth,
        config=_config_summary(config),
    )
    if config.manifest is not None:
        config.manifest.write_bytes(result.to_json() + b"\n")
    return result


def _warm_start(generator: EventGenerator, rate: float) -> None:
    """Live runs start with the visitors a site has in steady state, so the rate is even from
    the first second (a cold generator would have to run its clock ahead of the wall clock
    to keep up, see EventGenerator.warm_start); its clock starts now."""
    started = time.process_time()
    # ~30 long-lived objects per event/s and no cycles: the cycle collector would only rescan
    # them (it costs more than building them); run() freezes them right after.
    gc.disable()
    try:
        opened = generator.warm_start(time.time)
        # Out of the collector's sight before it runs again: a full collection over them
        # would take a few hundred ms, just as sending starts.
        gc.freeze()
    finally:
        gc.enable()
    sim_rate = generator.config.sim_rate
    log.info(
        "live: opened the sessions a site has in steady state; each event is sent at or "
        "after its event time",
        extra={
            "open_sessions": opened,
            "warm_up_cpu_s": round(time.process_time() - started, 3),
            "sim_rate": sim_rate,
        },
    )
    if sim_rate < rate:
        log.warning(
            "live: no event is sent before its time, so the rate is at most the simulated "
            "traffic's (--sim-rate); raise it to reach --rate",
            extra={"rate": rate, "sim_rate": sim_rate},
        )
    elif sim_rate > rate:
        log.warning(
            "live: the simulated traffic (--sim-rate) outpaces --rate; events fall ever "
            "further behind their event time",
            extra={"rate": rate, "sim_rate": sim_rate},
        )


def _warn_if_ahead(generator: EventGenerator) -> bool:
    """Event times more than a day ahead of the consumer's clock are invalid; say so once
    when the simulated clock (sending faster than simulated time passes) gets near that."""
    ahead = generator.now - time.time()
    if ahead > 3600:
        log.warning(
            "simulated time is ahead of the wall clock; past one day ahead, consumers reject "
            "events as invalid_timestamp (use --start-time in the past, or a higher --sim-rate)",
            extra={"ahead_seconds": round(ahead)},
        )
        return True
    return False


def _config_summary(config: RunConfig) -> dict[str, Any]:
    out = asdict(config)
    out["producer"].pop("extra", None)  # may carry credentials
    out["malformed_kinds"] = {kind: reason for kind, (reason, _) in MALFORMED_KINDS.items()}
    return out
