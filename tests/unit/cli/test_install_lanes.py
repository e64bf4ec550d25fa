"""`pagestream install` runs its Go builds and its other steps in two lanes at once."""

from __future__ import annotations

import threading

import pytest

from pagestream.cli import _run_install_lanes


def test_the_lanes_run_at_the_same_time_and_the_last_steps_after_both(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Each lane's first step waits for the other's: in one lane at a time this would time out.
    a_started, b_started = threading.Event(), threading.Event()
    order: list[str] = []

    def meet(mine: threading.Event, theirs: threading.Event, name: str) -> str:
        mine.set()
        assert theirs.wait(timeout=10), f"{name} ran alone"
        order.append(name)
        return name

    _run_install_lanes(
        [
            [("a1", lambda: meet(a_started, b_started, "a1")), ("a2", lambda: order.append("a2"))],
            [("b1", lambda: meet(b_started, a_started, "b1"))],
        ],
        [("last", lambda: order.append("last"))],
    )
    assert sorted(order) == ["a1", "a2", "b1", "last"]
    assert order.index("a1") < order.index("a2") and order[-1] == "last"
    # Steps are numbered as they start: the two first steps 1 and 2 in either order.
    out = capsys.readouterr().out.splitlines()
    numbers = {
        line.split(" ", 2)[1]: line.split(" ", 1)[0] for line in out if line.endswith(" ...")
    }
    assert {numbers["a1"], numbers["b1"]} == {"[1/4]", "[2/4]"}
    assert (numbers["a2"], numbers["last"]) == ("[3/4]", "[4/4]")
    assert sum(line.startswith(("[1/4] done in ", "[2/4] done in ")) for line in out) == 2


def test_after_an_error_no_lane_starts_another_step_and_the_error_is_raised() -> None:
    started: list[str] = []
    b_running, a_failing = threading.Event(), threading.Event()

    def fail() -> None:
        started.append("a1")
        assert b_running.wait(timeout=10)
        a_failing.set()
        raise RuntimeError("go build failed")

    def slow() -> None:
        # Still running when a1 fails: it ends, and b2 is not started.
        started.append("b1")
        b_running.set()
        assert a_failing.wait(timeout=10)

    with pytest.raises(RuntimeError, match="go build failed"):
        _run_install_lanes(
            [
                [("a1", fail), ("a2", lambda: started.append("a2"))],
                [("b1", slow), ("b2", lambda: started.append("b2"))],
            ],
            [("last", lambda: started.append("last"))],
        )
    assert sorted(started) == ["a1", "b1"]
