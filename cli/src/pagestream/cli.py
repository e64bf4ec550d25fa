"""The `pagestream` command line."""

from __future__ import annotations

import argparse
import functools
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pagestream.local.pipeline import PipelineFileError, load_pipeline
from pagestream.local.platform import DEFAULT_PIPELINE_FILE, LocalPlatform, TrafficSettings
from pagestream.stack.errors import StackError
from pagestream.stack.paths import StackPaths
from pagestream.stack.stack import COMPONENTS, DEFAULT_COMPONENTS, LocalStack
from pagestream_common.logs import configure_logging

if TYPE_CHECKING:
    from pagestream.stack.node.node import LocalNode

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


# One step of `pagestream install`: what it makes, and the call that makes it (and returns a
# path or a summary, printed as text).
InstallStep = tuple[str, Callable[[], object]]


def cmd_install(args: argparse.Namespace) -> int:
    """Fetch and build every pinned artifact into the cache, so later starts are offline."""
    from pagestream.stack.artifacts import (
        COREDNS_TOOLS,
        HELM_TOOLS,
        K8S_TOOLS,
        KSTATUS_TOOLS,
        PLATFORM_BUILDS,
        PROMETHEUS_OPERATOR_TOOLS,
        PROVISIONER_TOOLS,
        SKAFFOLD_TOOLS,
        go_binaries,
        maven_jars,
        pause_binary,
        upstream_binaries,
    )
    from pagestream.stack.crds import upstream_crds
    from pagestream.stack.spark import build_class_archive

    paths = StackPaths.default()
    fetches: list[InstallStep] = [
        ("Kafka broker jars", lambda: maven_jars(paths.cache, "kafka")),
        ("Spark connector jars", lambda: maven_jars(paths.cache, "spark")),
        ("Spark driver class-data archive", lambda: build_class_archive(paths)),
    ]
    if not args.kube:
        _run_install_lanes([fetches], [])
        print(f"cache: {paths.cache}")
        return 0
    # Two lanes at once: the Go builds (CPU, each `go build` already on every core) and
    # everything else (downloads, debootstrap, buildah: mostly waiting on the network and the
    # disk), which on a cold cache would otherwise wait out half an hour of compiling. The
    # platform images come last: they need the lanes' binaries and images both.
    go_builds: list[InstallStep] = [
        (
            "Kubernetes (control plane, kubelet, kube-proxy, kubectl) and etcd",
            lambda: go_binaries(paths.cache, K8S_TOOLS),
        ),
        ("CoreDNS", lambda: go_binaries(paths.cache, COREDNS_TOOLS)),
        ("the node's volume provisioner", lambda: go_binaries(paths.cache, PROVISIONER_TOOLS)),
        ("helm", lambda: go_binaries(paths.cache, HELM_TOOLS)),
        ("skaffold", lambda: go_binaries(paths.cache, SKAFFOLD_TOOLS)),
        (
            "kstatus (the operator tests' status check)",
            lambda: go_binaries(paths.cache, KSTATUS_TOOLS),
        ),
        (
            "prometheus-operator and its config reloader",
            lambda: go_binaries(paths.cache, PROMETHEUS_OPERATOR_TOOLS),
        ),
        *(
            (
                f"{build.name} {build.version()}",
                functools.partial(upstream_binaries, paths.cache, build),
            )
            for build in PLATFORM_BUILDS
        ),
    ]
    fetches += [
        ("the pod sandbox's pause binary", lambda: pause_binary(paths.cache)),
        (
            "upstream CRDs (spark-operator, Strimzi, prometheus-operator, CloudNativePG)",
            lambda: upstream_crds(paths.cache),
        ),
        ("pagestream's images (operator, simulator, spark)", lambda: _build_images(paths)),
    ]
    last: list[InstallStep] = [
        (
            "the platform's images (spark-operator, CloudNativePG, PostgreSQL, "
            "prometheus-operator, Prometheus, Kafka)",
            lambda: _build_platform_images(paths),
        ),
    ]
    _run_install_lanes([go_builds, fetches], last)
    print(f"cache: {paths.cache}")
    return 0


def _run_install_lanes(lanes: Sequence[Sequence[InstallStep]], then: Sequence[InstallStep]) -> None:
    """Run the lanes at the same time, each step after the one before it in its lane, then the
    ``then`` steps; each step's start and end are printed as they happen. After an error no
    lane starts another step; the first error is raised once the steps running have ended."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    total = sum(map(len, lanes)) + len(then)
    numbered = iter(range(1, total + 1))
    lock = threading.Lock()
    failed = threading.Event()

    def run(steps: Sequence[InstallStep]) -> None:
        for what, step in steps:
            if failed.is_set():
                return
            with lock:
                number = next(numbered)
                print(f"[{number}/{total}] {what} ...", flush=True)
            started = time.monotonic()
            try:
                made = step()
            except BaseException:
                failed.set()
                raise
            with lock:
                print(
                    f"[{number}/{total}] done in {time.monotonic() - started:.0f} s: {made}",
                    flush=True,
                )

    with ThreadPoolExecutor(max_workers=len(lanes), thread_name_prefix="install") as pool:
        futures = [pool.submit(run, lane) for lane in lanes]
    for future in futures:
        future.result()
    run(then)


def _build_images(paths: StackPaths) -> str:
    from pagestream.stack.images import COMPONENTS as IMAGE_COMPONENTS
    from pagestream.stack.images import ImageBuilder

    builder = ImageBuilder(paths)
    built = " ".join(builder.build_component(c).reference for c in IMAGE_COMPONENTS)
    # Each change to a component's sources is a new tag, and its archive a whole image.
    pruned = builder.prune()
    return f"{built}; {len(pruned)} stale images and archives removed" if pruned else built


def _build_platform_images(paths: StackPaths) -> str:
    from pagestream.stack.node.platform import build_platform_images

    images, _ = build_platform_images(paths)
    return " ".join(vars(images).values())


def _platform() -> LocalPlatform:
    return LocalPlatform(StackPaths.default())


def _progress(message: str) -> None:
    # Progress is for the person at the terminal; logs (JSON when not a TTY) carry the rest.
    print(f"==> {message}", file=sys.stderr, flush=True)


def cmd_up(args: argparse.Namespace) -> int:
    """Validate the pipeline YAML, then start servers, traffic and the job; return once the job
    has committed its first batch."""
    from pagestream.local.platform import where

    pipeline = load_pipeline(Path(args.file))
    traffic = TrafficSettings(
        rate=args.rate,
        events=args.events,
        duplicate_rate=args.duplicate_rate,
        malformed_rate=args.malformed_rate,
        late_rate=args.late_rate,
        bot_share=args.bot_share,
    )
    platform = _platform()
    config = platform.up(
        pipeline, traffic, progress=_progress, first_batch_timeout=args.first_batch_timeout
    )
    print(f"pipeline {pipeline.name!r} is running: the first batch is committed")
    for what, value in where(platform, config, pipeline).items():
        print(f"  {what:<18} {value}")
    print(
        "next: `pagestream status --watch`, `pagestream report`, `pagestream snapshot`, "
        "`pagestream down`"
    )
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    import json

    from rich.console import Console
    from rich.live import Live

    from pagestream.local.status import pipeline_status, render

    platform = _platform()
    status = pipeline_status(platform)
    if status is None:
        print("no local pipeline here yet: run `pagestream up`")
        return 0 if not args.json else 1
    if args.json:
        print(json.dumps(status.to_dict(), indent=2))
        return 0
    if not args.watch:
        Console().print(render(status))
        return 0
    with Live(render(status), refresh_per_second=4, screen=False) as live:
        while True:
            time.sleep(args.interval)
            status = pipeline_status(platform)
            if status is not None:
                live.update(render(status))


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
    url, schema, _ = _pipeline_database(args)
    day = dt.date.fromisoformat(args.day) if args.day else None
    to = dt.date.fromisoformat(args.to) if args.to else None
    if to is not None and (day is None or to < day):
        print("error: --to needs --day, on or before it (a range of days)", file=sys.stderr)
        return 2
    span = f"{args.day} to {args.to}" if to else (args.day or "today")
    console = Console()
    conn = psycopg2.connect(url)
    try:
        for name in names:
            columns, rows = read_report(conn, schema, name, day, args.tz, to)
            table = Table(title=f"{REPORTS[name].title} — {span}")
            for column in columns:
                table.add_column(
                    column,
                    justify="right" if column in ("views", "rank", "hour") else "left",
                    # A URL too wide for the terminal folds onto more lines rather than lose
                    # its end (the product's page is what tells two URLs apart).
                    overflow="fold" if column.endswith("_url") else "ellipsis",
                )
            for row in rows:
                table.add_row(*("" if v is None else str(v) for v in row))
            if not rows:
                table.caption = (
                    "no page views for these days yet" if to else ("no page views for this day yet")
                )
            console.print(table)
    finally:
        conn.close()
    return 0


def _pipeline_database(args: argparse.Namespace) -> tuple[str, str, str | None]:
    """(PostgreSQL URL, schema, pipeline name): from the flags, else the local pipeline's."""
    schema, url, name = args.schema, args.postgres_url, None
    platform = _platform()
    pipeline = platform.current() if not (schema and url) else None
    if pipeline is not None:
        config = platform.job_config(pipeline)
        schema, name = schema or config.postgres_schema, pipeline.name
        url = url or _stack(args).postgres().url(config.postgres_database)
    return url or _stack(args).postgres().url(), schema or "pagestream", name


def cmd_snapshot(args: argparse.Namespace) -> int:
    """Write the Page analytics dashboard as one static HTML file, from PostgreSQL."""
    import psycopg2

    from pagestream.local.snapshot import write_snapshot

    url, schema, name = _pipeline_database(args)
    conn = psycopg2.connect(url)
    try:
        path = write_snapshot(conn, schema, name or schema, Path(args.output), args.hours)
    finally:
        conn.close()
    print(f"wrote {path} (open it in a browser)")
    return 0


def _node() -> LocalNode:
    from pagestream.stack.node.node import LocalNode

    return LocalNode(StackPaths.default())


def cmd_cluster_up(args: argparse.Namespace) -> int:
    """Start the single-node Kubernetes cluster (building what is missing), then its status."""
    node = _node()
    node.up(progress=_progress)
    if args.images:
        from pagestream.stack.images import COMPONENTS as IMAGE_COMPONENTS

        node.load_components(IMAGE_COMPONENTS, progress=_progress)
    return cmd_cluster_status(args)


def cmd_cluster_down(args: argparse.Namespace) -> int:
    node = _node()
    inodes = node.namespace_inodes()
    node.down()
    left = node.leftovers(inodes)
    if left:
        print("still on the machine after down:\n  " + "\n  ".join(left), file=sys.stderr)
        return 1
    print("node stopped; nothing of it is left running")
    return 0


def cmd_cluster_status(args: argparse.Namespace) -> int:
    import json

    node = _node()
    if not node.running():
        print("no node runs here: `pagestream cluster up` starts one")
        return 3
    status = node.status()
    if getattr(args, "json", False):
        print(json.dumps(status, indent=2))
        return 0 if status["ready"] else 3
    print(f"node        {status['node']}  {'Ready' if status['ready'] else 'NOT Ready'}")
    print(f"api server  {status['server']}")
    print(
        f"kubeconfig  {status['kubeconfig']}  (export KUBECONFIG=... or `pagestream cluster kubeconfig`)"
    )
    print(f"memory      {status['memory_mib']} MiB (PSS of every node process and pod)")
    for name, pid in status["processes"].items():
        print(f"  {name:<24} {'pid ' + str(pid) if pid else 'not running'}")
    print(f"logs        {status['logs']}")
    return 0 if status["ready"] else 3


def cmd_cluster_deploy(args: argparse.Namespace) -> int:
    """Build and load pagestream's images, then install the chart's app release on the node."""
    from pagestream.stack.images import COMPONENTS as IMAGE_COMPONENTS
    from pagestream.stack.node.release import AppRelease

    node = _node()
    if not node.healthy():
        print("the node is not up: run `pagestream cluster up` first", file=sys.stderr)
        return 1
    refs = node.load_components(IMAGE_COMPONENTS, progress=_progress)
    if args.platform:
        from pagestream.stack.node.platform import deploy_pipeline_stack

        timings: dict[str, float] = {}
        stack = deploy_pipeline_stack(
            node,
            refs["operator"],
            namespace=args.namespace,
            release_name=args.release,
            sets=args.set,
            progress=_progress,
            timings=timings,
        )
        for phase, seconds in timings.items():
            print(f"{seconds:7.1f} s  {phase}")
        print(
            f"kafka      {stack.kafka_bootstrap} (SASL/SCRAM-SHA-512; users' Secrets: "
            f"{', '.join(sorted(stack.kafka_users.passwords))})"
        )
        print(f"database   CloudNativePG cluster {stack.database} (Secret {stack.database}-app)")
    else:
        release = AppRelease(node, namespace=args.namespace, name=args.release)
        print(release.install(refs["operator"], sets=args.set, progress=_progress))
    for component, ref in refs.items():
        print(f"image {component:<10} {ref}")
    return 0


def cmd_cluster_build_image(args: argparse.Namespace) -> int:
    """skaffold's custom build command (skaffold.yaml, profile pagestream-node): it passes the
    image name to build in $IMAGE and the build context in $BUILD_CONTEXT."""
    import os

    from pagestream.stack.node.skaffold import build_image

    image = os.environ.get("IMAGE")
    context = os.environ.get("BUILD_CONTEXT")
    if not image or not context:
        print("build-image is run by skaffold, which sets IMAGE and BUILD_CONTEXT", file=sys.stderr)
        return 2
    ref = build_image(_node(), args.component, image, Path(context))
    print(f"built and loaded {ref.reference}")
    return 0


def cmd_cluster_image_inputs(args: argparse.Namespace) -> int:
    """skaffold's custom dependencies command: the files an image is built from, as JSON."""
    import json

    from pagestream.stack.images import component_inputs

    print(json.dumps([str(p) for p in component_inputs(args.component, root=Path.cwd())]))
    return 0


def cmd_cluster_prepare_release(args: argparse.Namespace) -> int:
    """skaffold's deploy hook: CRDs and namespace on the node, the chart for helm to install."""
    from pagestream.stack.node.skaffold import prepare_release

    print(prepare_release(_node(), Path(args.checkout).resolve()))
    return 0


def cmd_cluster_skaffold(args: argparse.Namespace) -> int:
    """skaffold against the node: `pagestream cluster skaffold run` (or dev, delete)."""
    from pagestream.stack.node.skaffold import skaffold

    node = _node()
    if not node.healthy():
        print("the node is not up: run `pagestream cluster up` first", file=sys.stderr)
        return 1
    cli = f"{sys.executable} -m pagestream"
    proc = skaffold(node, args.skaffold_args, checkout=Path.cwd(), cli=cli)
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    return proc.returncode


def cmd_cluster_kubeconfig(args: argparse.Namespace) -> int:
    print(_node().kubeconfig)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    _platform().down(progress=_progress)
    print("local platform stopped; `pagestream up` resumes from the checkpoint")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pagestream",
        description="Real-time page-view analytics: the local platform and its tools.",
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser(
        "up",
        help="run a PageAnalyticsPipeline on this machine: servers, simulator, streaming job",
        description="Validate the pipeline YAML against the CRD (as the API server would), start "
        "Kafka, PostgreSQL and Prometheus, the simulator and the streaming job (Spark local "
        "mode, configured by the operator's rendering), and return after the first committed "
        "batch. On a running platform it does nothing; after `down` it resumes from the "
        "checkpoint.",
    )
    up.add_argument(
        "-f",
        "--file",
        default=str(DEFAULT_PIPELINE_FILE),
        help="the PageAnalyticsPipeline YAML (default: manifests/local/page-views.yaml)",
    )
    # The defaults are TrafficSettings' own, so there is one place to change them.
    up.add_argument(
        "--rate", type=float, default=TrafficSettings.rate, help="simulated events per second"
    )
    up.add_argument(
        "--events", type=int, help="the simulator stops after this many (default: runs until down)"
    )
    for flag, default, meaning in (
        ("--duplicate-rate", TrafficSettings.duplicate_rate, "share of events sent twice"),
        ("--malformed-rate", TrafficSettings.malformed_rate, "share of records malformed"),
        ("--late-rate", TrafficSettings.late_rate, "share of events an hour late"),
        ("--bot-share", TrafficSettings.bot_share, "share of events from crawlers"),
    ):
        up.add_argument(flag, type=float, default=default, help=f"{meaning} (default {default})")
    up.add_argument(
        "--first-batch-timeout",
        type=float,
        default=300.0,
        help="seconds to wait for the first committed batch",
    )
    up.set_defaults(func=cmd_up)
    sub.add_parser(
        "down", help="stop the simulator, the job (after its batch) and the servers"
    ).set_defaults(func=cmd_down)

    status = sub.add_parser(
        "status", help="the local pipeline: state, rates, lag, freshness, dead letters"
    )
    mode = status.add_mutually_exclusive_group()
    mode.add_argument("--watch", action="store_true", help="a live view, until Ctrl-C")
    mode.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    status.add_argument("--interval", type=float, default=2.0, help="--watch refresh, seconds")
    status.set_defaults(func=cmd_status)

    report = sub.add_parser("report", help="print the analytics reports as tables")
    report.add_argument(
        "name",
        nargs="?",
        default="all",
        help="all (default), top-products, top-countries, top-referrers, store-performance, "
        "hourly-product-views or hourly-browser-os",
    )
    report.add_argument("--day", help="YYYY-MM-DD (default: today in the report time zone)")
    report.add_argument(
        "--to", help="YYYY-MM-DD: the report over the days from --day to this one, both included"
    )
    report.add_argument("--tz", help="IANA time zone, e.g. Europe/Paris (default: the pipeline's)")
    report.add_argument(
        "--schema", help="the pipeline's PostgreSQL schema (default: the local pipeline's)"
    )
    report.add_argument("--postgres-url", help="postgresql://… (default: the local stack's)")
    report.set_defaults(func=cmd_report)

    snap = sub.add_parser(
        "snapshot", help="write the Page analytics dashboard as a static HTML file"
    )
    snap.add_argument("-o", "--output", default="pagestream-snapshot.html", help="the HTML file")
    snap.add_argument("--hours", type=float, default=24.0, help="time range: the last N hours")
    snap.add_argument(
        "--schema", help="the pipeline's PostgreSQL schema (default: the local pipeline's)"
    )
    snap.add_argument("--postgres-url", help="postgresql://… (default: the local stack's)")
    snap.set_defaults(func=cmd_snapshot)

    # Listed for --help only: main() hands `simulate ...` to the simulator's own parser whole.
    sub.add_parser(
        "simulate", help="send realistic traffic to Kafka (`pagestream simulate --help`)"
    )

    inst = sub.add_parser(
        "install", help="fetch/build the pinned Kafka, Spark, Kubernetes and helm artifacts"
    )
    inst.add_argument(
        "--kube",
        action="store_true",
        help="also build the Kubernetes binaries, etcd, CoreDNS, helm and pagestream's images",
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

    cluster = sub.add_parser(
        "cluster",
        help="a real single-node Kubernetes cluster on this machine (pods, Services, DNS)",
        description="etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd, "
        "the kubelet and kube-proxy in the node's own network and mount namespaces, built from "
        "pinned sources; see docs/kubernetes.md.",
    ).add_subparsers(dest="cluster_command", required=True, metavar="ACTION")
    cup = cluster.add_parser("up", help="start the node (builds what is missing the first time)")
    cup.add_argument(
        "--images",
        action="store_true",
        help="also build pagestream's images and load them into the node",
    )
    cup.set_defaults(func=cmd_cluster_up)
    cluster.add_parser(
        "down", help="stop the node; no process, mount, namespace or cgroup is left"
    ).set_defaults(func=cmd_cluster_down)
    cstatus = cluster.add_parser("status", help="what runs, where the kubeconfig is, memory")
    cstatus.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    cstatus.set_defaults(func=cmd_cluster_status)
    deploy = cluster.add_parser(
        "deploy",
        help="build and load the images, then helm-install the app release on the node",
    )
    deploy.add_argument("--namespace", default="pagestream", help="(default: pagestream)")
    deploy.add_argument("--release", default="pagestream", help="(default: pagestream)")
    deploy.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a chart value"
    )
    deploy.add_argument(
        "--platform",
        action="store_true",
        help="first install the platform: spark-operator, CloudNativePG (with the release's "
        "database), prometheus-operator with a Prometheus, and Kafka with SCRAM users",
    )
    deploy.set_defaults(func=cmd_cluster_deploy)
    build = cluster.add_parser(
        "build-image", help="skaffold's custom build: build $IMAGE with buildah, load it"
    )
    build.add_argument("component", choices=("operator", "simulator", "spark"))
    build.set_defaults(func=cmd_cluster_build_image)
    inputs = cluster.add_parser(
        "image-inputs", help="the files an image is built from, as JSON (skaffold's watcher)"
    )
    inputs.add_argument("component", choices=("operator", "simulator", "spark"))
    inputs.set_defaults(func=cmd_cluster_image_inputs)
    prepare = cluster.add_parser(
        "prepare-release",
        help="skaffold's deploy hook: CRDs, the restricted namespace, the chart without its "
        "dependency list",
    )
    prepare.add_argument("--checkout", default=".", help="the repository checkout (default: .)")
    prepare.set_defaults(func=cmd_cluster_prepare_release)
    skaffold_cmd = cluster.add_parser(
        "skaffold", help="the pinned skaffold against the node (profile pagestream-node)"
    )
    skaffold_cmd.add_argument("skaffold_args", nargs=argparse.REMAINDER, help="e.g. run, dev")
    skaffold_cmd.set_defaults(func=cmd_cluster_skaffold)
    cluster.add_parser("kubeconfig", help="print the path of the node's kubeconfig").set_defaults(
        func=cmd_cluster_kubeconfig
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
    except PipelineFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
