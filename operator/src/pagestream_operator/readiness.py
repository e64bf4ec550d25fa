"""The operator's readiness endpoint, ``/readyz``, beside kopf's liveness endpoint ``/healthz``.

The two answer different questions, so a kubelet can act on each:

- ``/healthz`` (kopf's, on the liveness port): the operator's event loop answers. It asks the API
  server nothing, so an API server outage never gets the operator restarted.
- ``/readyz`` (this module, on the readiness port): the operator can reconcile now. 200 once
  kopf has finished its start-up (it opens its watches on pipelines and SparkApplications only
  after that) *and* the API server answers a list of PageAnalyticsPipelines, made with the
  operator's own credentials, in every namespace it serves (all of them, or each of
  ``--namespaces``): the API server is reachable, the credentials are accepted, the CRD is
  installed and RBAC lets the operator read pipelines there. 503 otherwise, with the reason.

The check's result is kept for a few seconds, so probes cost at most one small list per
namespace per period whatever their rate. The server is a standard-library HTTP server on its
own thread: it needs nothing from kopf's event loop, whose health is ``/healthz``'s business.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PATH = "/readyz"
STARTING = "starting: kopf has not finished its start-up"


class Readiness:
    """Ready = ``started`` is set and ``check`` returns without raising; the outcome is cached
    for ``max_age`` seconds. ``check`` raises with a message saying what is wrong."""

    def __init__(
        self,
        check: Callable[[], None],
        *,
        max_age: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.started = threading.Event()
        self._check = check
        self._max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._last: tuple[float, bool, str] | None = None

    def state(self) -> tuple[bool, str]:
        """(ready, reason)."""
        if not self.started.is_set():
            return False, STARTING
        with self._lock:
            now = self._clock()
            if self._last is not None and now - self._last[0] < self._max_age:
                return self._last[1], self._last[2]
            try:
                self._check()
            except Exception as exc:
                ready, reason = False, f"{type(exc).__name__}: {exc}".strip()
            else:
                ready, reason = True, "ready"
            self._last = (now, ready, reason)
            return ready, reason


def serve(readiness: Readiness, host: str, port: int) -> ThreadingHTTPServer:
    """Serve ``/readyz`` on ``host:port`` from a daemon thread; returns the running server."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != PATH:
                self.send_error(404)
                return
            ready, reason = readiness.state()
            body = json.dumps({"ready": ready, "reason": reason[:1000]}).encode()
            self.send_response(200 if ready else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """The kubelet probes every few seconds: no access log."""

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="readiness", daemon=True).start()
    return server
