"""The `pagestream` command line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from pagestream.stack.errors import StackError
from pagestream.stack.paths import StackPaths
from pagestream.stack.stack import COMPONENTS, DEFAULT_COMPONENTS, LocalStack
from pagestream_common.logs import configure_logging

log = logging.getLogger("pagestream")


def _stack(args: argparse.Namespace) -> LocalStack:
    return LocalStack(
        StackPaths.default(), with_controller_manager=getattr(args, "controller_manager", False)
    )


def cmd_stack_up(args: argparse.Namespace) -> int:
    stack = _stack(args)
    stack.up(tuple(args.components) or DEFAULT_COMPONENTS)
    return cmd_stack_status(args)


def cmd_stack_down(args: argparse.Namespace) -> int:
    _stack(args).down(tuple(args.components) or None)
    return 0


def cmd_stack_status(args: argparse.Namespace) -> int:
    stack = _stack(args)
    status = stack.status()
    if not status:
        print("no local stack here yet: run `pagestream stack up`")
        return 0
    for name, healthy in status.items():
        print(f"{name:<11} {'up' if healthy else 'down':<5} {_endpoint(stack, name)}")
    print(f"logs:       {stack.paths.logs}")
    return 0


def _endpoint(stack: LocalStack, name: str) -> str:
    if name == "kafka":
        return f"bootstrap.servers={stack.kafka().bootstrap_servers}"
    if name == "postgres":
        return f"postgresql://postgres@127.0.0.1:{stack.postgres().port}/pagestream"
    if name == "prometheus":
        return stack.prometheus().url
    if name == "kube":
        return f"KUBECONFIG={stack.kube().kubeconfig}"
    return ""


def cmd_stack_env(args: argparse.Namespace) -> int:
    """Shell exports for the running stack: `eval "$(pagestream stack env)"`."""
    stack = _stack(args)
    known = stack.known()
    if "kafka" in known:
        print(f"export PAGESTREAM_KAFKA_BOOTSTRAP_SERVERS={stack.kafka().bootstrap_servers}")
    if "postgres" in known:
        print(f"export PAGESTREAM_POSTGRES_URL={stack.postgres().url()}")
    if "prometheus" in known:
        print(f"export PAGESTREAM_PROMETHEUS_URL={stack.prometheus().url}")
    if "kube" in known:
        print(f"export KUBECONFIG={stack.kube().kubeconfig}")
    return 0


def cmd_install(args: argparse.Namespace) -> int:
    """Fetch and build every pinned artifact into the cache, so later starts are offline."""
    from pagestream.stack.artifacts import HELM_TOOLS, K8S_TOOLS, go_binaries, maven_jars
    from pagestream.stack.crds import upstream_crds

    paths = StackPaths.default()
    steps = [
        ("Kafka broker jars", lambda: maven_jars(paths.cache, "kafka")),
        ("Spark connector jars", lambda: maven_jars(paths.cache, "spark")),
    ]
    if args.kube:
        steps += [
            (
                "kube-apiserver, etcd, kube-controller-manager",
                lambda: go_binaries(paths.cache, K8S_TOOLS),
            ),
            ("helm", lambda: go_binaries(paths.cache, HELM_TOOLS)),
            (
                "upstream CRDs (spark-operator, Strimzi, prometheus-operator, CloudNativePG)",
                lambda: upstream_crds(paths.cache),
            ),
        ]
    for i, (what, step) in enumerate(steps, 1):
        print(f"[{i}/{len(steps)}] {what} ...", flush=True)
        print(f"      {step()}", flush=True)
    print(f"cache: {paths.cache}")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from pagestream.smoke import run_smoke_pipeline

    stack = _stack(args)
    stack.up(DEFAULT_COMPONENTS)
    result = run_smoke_pipeline(stack.paths, stack.kafka(), stack.postgres(), events=args.events)
    print(
        f"smoke pipeline: produced {result.produced} events to {result.topic}, Spark read "
        f"{result.read_by_spark}, PostgreSQL holds {result.rows_in_postgres}: "
        + ("OK" if result.ok else "MISMATCH")
    )
    cmd_stack_status(args)
    print("stop everything with `pagestream down` (or `make down`)")
    return 0 if result.ok else 1


def cmd_report(args: argparse.Namespace) -> int:
    """Print analytics reports as tables, from the local stack's PostgreSQL or --postgres-url."""
    import datetime as dt

    import psycopg2
    from rich.console import Console
    from rich.table import Table

    from pagestream_spark.reports import REPORTS, read_report

    names = list(REPORTS) if args.name == "all" else [args.name]
    if args.name != "all" and args.name not in REPORTS:
        print(
            f"error: unknown report {args.name!r}; choose from: all, {', '.join(REPORTS)}",
            file=sys.stderr,
        )
        return 2
    url = args.postgres_url or _stack(args).postgres().url()
    day = dt.date.fromisoformat(args.day) if args.day else None
    console = Console()
    conn = psycopg2.connect(url)
    try:
        for name in names:
            columns, rows = read_report(conn, args.schema, name, day, args.tz)
            table = Table(title=f"{REPORTS[name].title} — {args.day or 'today'}")
            for column in columns:
                table.add_column(
                    column, justify="right" if column in ("views", "rank", "hour") else "left"
                )
            for row in rows:
                table.add_row(*("" if v is None else str(v) for v in row))
            if not rows:
                table.caption = "no page views for this day yet"
            console.print(table)
    finally:
        conn.close()
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    _stack(args).down()
    print("local stack stopped")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pagestream",
        description="Real-time page-view analytics: the local platform and its tools.",
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="start the local platform and run the smoke pipeline through it")
    up.add_argument("--events", type=int, default=1000, help="events the smoke pipeline sends")
    up.set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop every local component").set_defaults(func=cmd_down)

    report = sub.add_parser("report", help="print the analytics reports as tables")
    report.add_argument(
        "name",
        nargs="?",
        default="all",
        help="all (default), top-products, top-countries, top-referrers, store-performance, "
        "hourly-product-views or hourly-browser-os",
    )
    report.add_argument("--day", help="YYYY-MM-DD (default: today in the report time zone)")
    report.add_argument("--tz", help="IANA time zone, e.g. Europe/Paris (default: the pipeline's)")
    report.add_argument("--schema", default="pagestream", help="the pipeline's PostgreSQL schema")
    report.add_argument("--postgres-url", help="postgresql://… (default: the local stack's)")
    report.set_defaults(func=cmd_report)

    # Listed for --help only: main() hands `simulate ...` to the simulator's own parser whole.
    sub.add_parser(
        "simulate", help="send realistic traffic to Kafka (`pagestream simulate --help`)"
    )

    inst = sub.add_parser(
        "install", help="fetch/build the pinned Kafka, Spark, Kubernetes and helm artifacts"
    )
    inst.add_argument(
        "--kube", action="store_true", help="also build kube-apiserver, etcd and helm"
    )
    inst.set_defaults(func=cmd_install)

    stack = sub.add_parser("stack", help="manage single local components").add_subparsers(
        dest="stack_command", required=True, metavar="ACTION"
    )
    for name, func, helptext in (
        ("up", cmd_stack_up, "start components (default: kafka postgres prometheus)"),
        ("down", cmd_stack_down, "stop components (default: all)"),
    ):
        p = stack.add_parser(name, help=helptext)
        p.add_argument("components", nargs="*", metavar="COMPONENT", help=", ".join(COMPONENTS))
        p.add_argument(
            "--controller-manager",
            action="store_true",
            help="with kube: also run kube-controller-manager (garbage collection)",
        )
        p.set_defaults(func=func)
    stack.add_parser("status", help="which components run, and where").set_defaults(
        func=cmd_stack_status
    )
    stack.add_parser("env", help="shell exports for the running stack").set_defaults(
        func=cmd_stack_env
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["simulate"]:
        from pagestream_simulator.cli import main as simulate_main

        return simulate_main(argv[1:])
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    try:
        return int(args.func(args))
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
