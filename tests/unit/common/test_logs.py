from __future__ import annotations

import io
import json
import logging

from pagestream_common.logs import configure_logging


def _emit(json_output: bool) -> str:
    stream = io.StringIO()
    configure_logging("INFO", json_output=json_output, stream=stream)
    logger = logging.getLogger("pagestream.test")
    logger.info("started %s", "kafka", extra={"pid": 42, "log": "/tmp/k.log"})
    logger.debug("not shown")
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed")
    return stream.getvalue()


def test_json_lines_carry_message_extras_and_exceptions() -> None:
    lines = [
        json.loads(line) for line in _emit(json_output=True).splitlines() if line.startswith("{")
    ]
    assert [entry["msg"] for entry in lines] == ["started kafka", "failed"]
    assert lines[0]["pid"] == 42 and lines[0]["log"] == "/tmp/k.log"
    assert lines[0]["level"] == "info" and lines[0]["logger"] == "pagestream.test"
    assert "ValueError: boom" in lines[1]["exc"]


def test_text_output_is_one_readable_line_per_event() -> None:
    out = _emit(json_output=False)
    assert out.splitlines()[0] == "info    started kafka  [pid=42 log=/tmp/k.log]"
    assert "not shown" not in out


def test_non_tty_stream_defaults_to_json() -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    logging.getLogger("x").warning("hello")
    assert json.loads(stream.getvalue())["msg"] == "hello"
