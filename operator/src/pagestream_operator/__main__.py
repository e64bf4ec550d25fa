"""``python -m pagestream_operator``: run the operator standalone (no peering), with JSON logs,
a liveness endpoint (kopf's ``/healthz``), a readiness endpoint (``/readyz``, readiness.py) and a
Prometheus metrics port."""

from __future__ import annotations

import logging
import os
import sys

from pagestream_operator.settings import OperatorSettings, SettingsError


class _KopfRecordFilter(logging.Filter):
    """kopf attaches its whole settings object and the object reference to each record; keep
    the reference (as ``object``, the way ``kopf run --log-format=json`` does) and drop the
    rest, so a log line stays one short line."""

    def filter(self, record: logging.LogRecord) -> bool:
        ref = record.__dict__.pop("k8s_ref", None)
        if ref:
            record.__dict__["object"] = ref
        for noise in ("settings", "k8s_skip"):
            record.__dict__.pop(noise, None)
        return True


def main(argv: list[str] | None = None) -> int:
    try:
        settings = OperatorSettings.load(sys.argv[1:] if argv is None else argv)
    except SettingsError as exc:
        print(f"pagestream-operator: invalid settings: {exc}", file=sys.stderr)
        return 2

    import kopf
    from prometheus_client import start_http_server

    from pagestream_common.logs import configure_logging
    from pagestream_operator.apply import new_api
    from pagestream_operator.handlers import register
    from pagestream_operator.readiness import Readiness, serve

    configure_logging(settings.log_level, json_output=settings.log_format == "json")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_KopfRecordFilter())
    log = logging.getLogger("pagestream_operator")
    if settings.kubeconfig:
        # kopf logs in through the kubernetes client, which reads $KUBECONFIG.
        os.environ["KUBECONFIG"] = settings.kubeconfig
    api = new_api(settings.kubeconfig, pool_size=settings.workers + 2)
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.bind_address)
    liveness = (
        f"http://{settings.bind_address}:{settings.liveness_port}/healthz"
        if settings.liveness_port
        else None
    )
    # kopf raises `started` once its startup handlers have run, which is when its watches start.
    readiness = Readiness(lambda: api.check_pipelines_readable(settings.namespaces))
    ready_url = None
    if settings.readiness_port:
        serve(readiness, settings.bind_address, settings.readiness_port)
        ready_url = f"http://{settings.bind_address}:{settings.readiness_port}/readyz"
    log.info(
        "starting",
        extra={
            "namespaces": list(settings.namespaces) or "all",
            "resync_seconds": settings.resync_seconds,
            "metrics_port": settings.metrics_port,
            "liveness": liveness,
            "readiness": ready_url,
        },
    )
    if settings.data_plane_configmap and settings.data_plane_namespace:
        from pagestream_operator.data_plane_loop import DataPlaneLoop

        DataPlaneLoop(
            api,
            settings.data_plane_namespace,
            settings.data_plane_configmap,
            resync_seconds=settings.data_plane_resync_seconds,
        ).start()
    kopf.run(
        registry=register(settings, api),
        standalone=True,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        liveness_endpoint=liveness,
        ready_flag=readiness.started,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
