"""Operator settings: typed, from PAGESTREAM_OPERATOR_* and flags, validated once."""

from __future__ import annotations

import pytest

from pagestream_operator.settings import OperatorSettings, SettingsError


def test_defaults() -> None:
    s = OperatorSettings.load([], env={})
    assert (s.namespaces, s.resync_seconds, s.metrics_port, s.liveness_port) == (
        (),
        60.0,
        8080,
        8081,
    )
    # /readyz is served only when asked for (the chart asks, on 8082).
    assert s.readiness_port == 0


def test_readiness_port_from_flag_or_environment() -> None:
    assert OperatorSettings.load(["--readiness-port", "8082"], env={}).readiness_port == 8082
    env = {"PAGESTREAM_OPERATOR_READINESS_PORT": "9000"}
    assert OperatorSettings.load([], env=env).readiness_port == 9000
    with pytest.raises(SettingsError, match="READINESS_PORT"):
        OperatorSettings.load(["--readiness-port", "70000"], env={})


def test_environment_then_flags_win() -> None:
    env = {"PAGESTREAM_OPERATOR_RESYNC_SECONDS": "5", "PAGESTREAM_OPERATOR_NAMESPACES": "a,b"}
    s = OperatorSettings.load(["--resync-seconds", "2"], env=env)
    assert s.resync_seconds == 2.0
    assert s.namespaces == ("a", "b")


@pytest.mark.parametrize(
    ("argv", "env", "names"),
    [
        (["--resync-seconds", "0"], {}, "RESYNC_SECONDS"),
        ([], {"PAGESTREAM_OPERATOR_WORKERS": "many"}, "WORKERS"),
        (["--log-level", "LOUD"], {}, "LOG_LEVEL"),
    ],
)
def test_invalid_settings_name_the_setting(
    argv: list[str], env: dict[str, str], names: str
) -> None:
    with pytest.raises(SettingsError, match=names):
        OperatorSettings.load(argv, env=env)


def test_unknown_environment_variables_are_ignored_but_unknown_flags_fail() -> None:
    assert OperatorSettings.load([], env={"PAGESTREAM_OPERATOR_NOPE": "1"}).workers == 8
    with pytest.raises(SystemExit):
        OperatorSettings.load(["--nope"], env={})
