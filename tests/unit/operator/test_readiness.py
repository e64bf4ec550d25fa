"""/readyz: 503 until kopf has started and the check passes, the reason in the body; the
check's outcome cached for a while; nothing else served on that port."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from pagestream_operator.readiness import STARTING, Readiness, serve


class Check:
    def __init__(self) -> None:
        self.calls = 0
        self.error: Exception | None = None

    def __call__(self) -> None:
        self.calls += 1
        if self.error:
            raise self.error


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_not_ready_until_started_and_the_check_passes() -> None:
    check, clock = Check(), Clock()
    readiness = Readiness(check, max_age=5, clock=clock)
    assert readiness.state() == (False, STARTING)
    assert check.calls == 0  # nothing is asked of the API server before kopf has started
    readiness.started.set()
    assert readiness.state() == (True, "ready")
    clock.now += 5
    check.error = RuntimeError("listing pageanalyticspipelines in all namespaces: 403 Forbidden")
    assert readiness.state() == (
        False,
        "RuntimeError: listing pageanalyticspipelines in all namespaces: 403 Forbidden",
    )


def test_the_outcome_is_cached_for_max_age() -> None:
    check, clock = Check(), Clock()
    readiness = Readiness(check, max_age=5, clock=clock)
    readiness.started.set()
    for _ in range(10):
        assert readiness.state()[0] is True
    assert check.calls == 1
    clock.now += 4.9
    check.error = RuntimeError("down")
    assert readiness.state()[0] is True and check.calls == 1
    clock.now += 0.1
    assert readiness.state() == (False, "RuntimeError: down") and check.calls == 2
    # A failure is cached too, and so is the recovery after it.
    check.error = None
    assert readiness.state()[0] is False and check.calls == 2
    clock.now += 5
    assert readiness.state() == (True, "ready") and check.calls == 3


@pytest.fixture
def served() -> Iterator[tuple[Readiness, Check, str]]:
    check = Check()
    readiness = Readiness(check, max_age=0)
    server = serve(readiness, "127.0.0.1", 0)
    yield readiness, check, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_the_endpoint_answers_200_or_503_with_the_reason(
    served: tuple[Readiness, Check, str],
) -> None:
    readiness, check, base = served
    assert get(f"{base}/readyz") == (503, {"ready": False, "reason": STARTING})
    readiness.started.set()
    assert get(f"{base}/readyz") == (200, {"ready": True, "reason": "ready"})
    check.error = RuntimeError("listing pageanalyticspipelines in namespace a: 403 Forbidden")
    assert get(f"{base}/readyz") == (
        503,
        {
            "ready": False,
            "reason": "RuntimeError: listing pageanalyticspipelines in namespace a: 403 Forbidden",
        },
    )


def test_only_readyz_is_served(served: tuple[Readiness, Check, str]) -> None:
    readiness, check, base = served
    readiness.started.set()
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{base}/healthz", timeout=5)
    info.value.close()
    assert info.value.code == 404
    assert check.calls == 0
