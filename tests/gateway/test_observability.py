"""The node's log lines: one JSON object a line, every value escaped and redacted."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
import structlog

from gateway.logsafe import REDACTED
from gateway.observability import configure_logging, make_safe

AADHAAR = "2345 6789 0123"
STUDENT = "WB201900000013"


@pytest.fixture
def lines(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[], Any]]:
    """Log through the node's configuration; read back the lines it wrote.

    The configuration is applied on the first read's behalf inside the test, where
    ``sys.stdout`` is the capture the test reads (not the setup phase's).
    """
    saved = structlog.get_config()

    def read() -> list[dict[str, Any]]:
        out = capsys.readouterr().out
        return [orjson.loads(line) for line in out.splitlines()]

    yield read
    structlog.configure(**saved)


def logger() -> Any:
    configure_logging("info")
    return structlog.get_logger("gateway.test")


def test_each_event_is_one_json_line_with_level_and_utc_time(lines: Any) -> None:
    log = logger()
    log.info("exchange", status=200, duration_ms=1.5, reason=None)
    log.debug("not.written")

    [line] = lines()
    assert line["event"] == "exchange"
    assert (line["status"], line["duration_ms"], line["reason"]) == (200, 1.5, None)
    assert line["level"] == "info"
    assert line["timestamp"].endswith("Z")


def test_a_value_cannot_forge_a_second_line(lines: Any) -> None:
    forged = 'x"}\n{"event":"exchange","decision":"forwarded"}\u2028'
    logger().warning("odd", user_agent=forged)

    [line] = lines()
    assert line["user_agent"] == (
        'x"}\\u000a{"event":"exchange","decision":"forwarded"}\\u2028'
    )


def test_personal_numbers_are_redacted_at_any_depth(lines: Any) -> None:
    logger().info(
        "event",
        note=f"aadhaar {AADHAAR}",
        nested={"student": STUDENT, "list": [STUDENT, ("t", AADHAAR)], "n": 5},
    )

    [line] = lines()
    text = orjson.dumps(line).decode()
    assert AADHAAR not in text
    assert STUDENT not in text
    assert line["note"] == f"aadhaar {REDACTED}"
    assert line["nested"] == {
        "student": REDACTED,
        "list": [REDACTED, ["t", REDACTED]],
        "n": 5,
    }


def test_keys_are_made_safe_as_values_are() -> None:
    """A key built from input (a header name, a field) is no way around it."""
    event = {"event": "x", "by_field": {STUDENT: 1, "a\nb": 2}, AADHAAR: "v"}

    safe = make_safe(None, "info", event)

    text = orjson.dumps(safe).decode()
    assert STUDENT not in text
    assert AADHAAR not in text
    assert safe["by_field"] == {REDACTED: 1, "a\\u000ab": 2}
    assert safe[REDACTED] == "v"


def test_values_that_are_not_text_pass_unchanged() -> None:
    event = {"event": "x", "count": 123456789012, "ok": True, "ms": 0.25, "none": None}

    assert make_safe(None, "info", event) == event
