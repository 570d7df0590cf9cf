"""C09, C10, C12, C13 end to end: hostile paths and header values never reach the
provider, are answered with a typed error and logged once, escaped."""

from __future__ import annotations

import pytest

from tests.gateway.conftest import KANYASHREE, SABOOJSATHI, Harness
from tests.gateway.hostile.support import (
    SCHOOLS,
    STUDENTS,
    Reply,
    send,
    send_fields,
)

pytestmark = pytest.mark.anyio

ROOT = f"/{SCHOOLS}"


@pytest.mark.parametrize(
    ("path", "status", "reason"),
    [
        # C09: encoded separators, NUL and delimiters.
        ("/by-udise%2F..%2F..%2Fteachers", 400, "invalid_path"),
        ("/by-udise/..%5C..%5Cteachers", 400, "invalid_path"),
        ("/19110900503%00.json", 400, "invalid_path"),
        ("/by-udise;x=1/../../teachers", 400, "invalid_path"),
        ("/teachers%23/by-udise/19110900503", 400, "invalid_path"),
        ("/teachers%3F/by-udise/19110900503", 400, "invalid_path"),
        ("/%2e%2e/%2e%2e/students", 400, "invalid_path"),
        # C10: dot-segments are removed first; what no rule names is denied.
        ("/19110900503/../../teachers", 400, "invalid_path"),
        ("/19110900503/teachers/../../x/teachers", 403, "access_denied"),
        ("/./19110900503/teachers", 403, "access_denied"),
        ("//teachers", 400, "invalid_path"),
        ("/_debug/vars", 403, "access_denied"),
        # C12: CR, LF and NUL after decoding.
        ("/19110900503%0d%0aX-Gateway-Client:%20exam-board%0d%0a", 400, "invalid_path"),
        ("/19110900503%0a", 400, "invalid_path"),
        ("/19110900503%0d", 400, "invalid_path"),
        # C13: ESC and a forged log line in the path.
        (
            "/%1b%5b2J%1b%5b1%3b1H%0a2026-12-04T10:00:01Z%20decision=forwarded",
            400,
            "invalid_path",
        ),
    ],
)
async def test_hostile_paths_are_refused_and_never_forwarded(
    harness: Harness, path: str, status: int, reason: str
) -> None:
    response = await send(harness, "GET", ROOT + path)

    assert response.status_code == status
    assert response.headers["x-road-error"].endswith(f".{reason}")
    (record,) = await harness.exchanges()
    assert record["upstream_called"] is False
    assert record["reason"] is not None


@pytest.mark.parametrize(
    ("path", "service_part"),
    [
        ("/r1/WB/GOV/SED%2Fbanglarshiksha/schools/19110900503", "encoded slash"),
        ("/r1/WB/GOV/SED/banglarshiksha%5Cx/schools/19110900503", "backslash"),
        ("/r1/WB/GOV/SED/bangla%00rshiksha/schools", "NUL"),
    ],
)
async def test_encoded_separators_in_the_service_id_are_invalid_path(
    harness: Harness, path: str, service_part: str
) -> None:
    response = await send(harness, "GET", path.removeprefix("/r1"))

    assert response.status_code == 400, service_part
    assert response.headers["x-road-error"] == "Client.invalid_path"


async def test_logged_path_keeps_control_characters_escaped(harness: Harness) -> None:
    path = ROOT + "/%1b%5b2J%0a2026-12-04T10:00:01Z%20decision=forwarded"

    await send(harness, "GET", path)

    (record,) = await harness.exchanges()
    assert "\x1b" not in record["path"]
    assert "\n" not in record["path"]
    assert record["path"].endswith(
        "%1b%5b2J%0a2026-12-04T10:00:01Z%20decision=forwarded"
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("user-agent", b"mdm-sync/2.1 \x1b]0;owned\x07"),
        ("x-note", b"a\x00b"),
        ("x-note", b"a\rb"),
        ("x-note", b"a\nb"),
    ],
)
async def test_control_bytes_in_header_values_are_invalid_header(
    harness: Harness, name: str, value: bytes
) -> None:
    response = await send(
        harness, "GET", ROOT + "/19110900503", headers={name: value.decode("latin-1")}
    )

    assert response.status_code == 400
    assert response.headers["x-road-error"] == "Client.invalid_header"
    (record,) = await harness.exchanges()
    assert record["upstream_called"] is False


@pytest.mark.parametrize(
    ("sent", "echoed"),
    [
        ("7b0c-41aa", True),
        ("7b0c%0d%0aSet-Cookie:%20sid=1", False),
        ("x" * 65, False),
        ("id with space", False),
    ],
)
async def test_request_id_is_echoed_only_when_plainly_safe(
    harness: Harness, sent: str, echoed: bool
) -> None:
    response = await send(
        harness, "GET", ROOT + "/nowhere/x", headers={"x-road-request-id": sent}
    )

    assert (response.headers["x-road-request-id"] == sent) is echoed
    assert "set-cookie" not in response.headers
    (record,) = await harness.exchanges()
    assert (record["request_id"] == sent) is echoed


@pytest.mark.parametrize(
    "purposes",
    [
        # Either order: the first value would pick one purpose, the last another.
        ("saboojsathi-roster", "kanyashree-eligibility"),
        ("kanyashree-eligibility", "saboojsathi-roster"),
    ],
)
async def test_a_repeated_purpose_is_invalid_header(
    harness: Harness, purposes: tuple[str, str]
) -> None:
    fields = [("x-road-purpose", purpose) for purpose in purposes]

    response = await send_fields(
        harness, SABOOJSATHI, "GET", f"/{STUDENTS}/roster/19999999999", fields
    )

    await _refused_as_repeated(harness, response, "x-road-purpose")


async def test_a_repeated_content_type_is_invalid_header(harness: Harness) -> None:
    fields = [
        ("x-road-purpose", "kanyashree-eligibility"),
        ("content-type", "application/json"),
        ("content-type", "text/plain"),
    ]

    response = await send_fields(
        harness, KANYASHREE, "POST", f"/{STUDENTS}/verify-enrolment", fields
    )

    await _refused_as_repeated(harness, response, "content-type")


async def _refused_as_repeated(harness: Harness, response: Reply, name: str) -> None:
    assert response.status_code == 400
    assert response.headers["x-road-error"] == "Client.invalid_header"
    (record,) = await harness.exchanges()
    assert record["upstream_called"] is False
    assert record["reason"] == f"duplicate_{name.replace('-', '_')}"
