"""``python -m pagestream_operator``: run the operator standalone (no peering), with JSON logs,
a liveness endpoint (kopf's ``/healthz``) and a Prometheus metrics port."""

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
    log.info(
        "starting",
        extra={
            "namespaces": list(settings.namespaces) or "all",
            "resync_seconds": settings.resync_seconds,
            "metrics_port": settings.metrics_port,
            "liveness": liveness,
        },
    )
    kopf.run(
        registry=register(settings, api),
        standalone=True,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        liveness_endpoint=liveness,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
