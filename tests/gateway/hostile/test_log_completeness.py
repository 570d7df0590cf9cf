"""C38 and the log-safety scan: every kind of failure leaves one record in one
unbroken chain, and no log line or record carries a token, a personal number or
a control character."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from structlog.testing import capture_logs

from gateway.logsafe import contains_personal_number
from gateway.throttle import parse_rate
from tests.gateway.conftest import SABOOJSATHI, Harness
from tests.gateway.hostile.support import (
    SCHOOLS,
    asgi,
    auth_headers,
    consented_applicant,
    provider,
    route_to,
    send,
    verify,
)

pytestmark = pytest.mark.anyio

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


async def _every_kind_of_failure(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> list[str]:
    """One exchange of each kind; return the bearer tokens that were sent."""
    applicant = await consented_applicant(harness)
    school = f"/{SCHOOLS}/19110900503"
    host = harness.demo.mediator_url.split("//", 1)[1].rstrip("/")
    tokens: list[str] = []

    async def as_saboojsathi(path: str, **kwargs: Any) -> None:
        headers = auth_headers(harness, SABOOJSATHI, **kwargs.pop("headers", {}))
        tokens.append(headers["authorization"].removeprefix("Bearer "))
        await send(harness, "GET", path, client=None, headers=headers, **kwargs)

    await verify(harness, orjson.dumps(applicant))  # forwarded
    await send(
        harness, "GET", school, client=None, headers={"authorization": "Bearer x.y.z"}
    )
    await as_saboojsathi(f"/{SCHOOLS}/_debug/vars")  # 403 access
    unconsented = {**applicant, "applicant": {"registry_uid": "WB201900001236"}}
    await verify(harness, orjson.dumps(unconsented))  # 403 consent or 422
    await verify(harness, b'{"applicant":{"registry_uid":999901234563}}')  # 422
    await as_saboojsathi(
        f"/{SCHOOLS}/%1b%5b2J%0a2026-12-04T10:00:01Z%20decision=forwarded"
    )
    await as_saboojsathi(school, headers={"user-agent": "x \x1b]0;owned\x07"})
    await asgi(  # 400 framing: two Content-Length
        harness,
        "POST",
        f"/r1{school}".encode(),
        [("host", host), ("content-length", "2"), ("content-length", "0")],
        b"{}",
    )
    await asgi(  # a client that goes away mid-body
        harness,
        "POST",
        f"/r1/{SCHOOLS}/x".encode(),
        [("host", host), ("content-length", "40")],
        b'{"udise',
        disconnect=True,
    )

    async def silent(_request: bytes, _writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    async with provider(silent) as fake:
        route_to(harness, monkeypatch, fake.port, read_timeout_s=0.2)
        await as_saboojsathi(school)  # 504

    throttle = harness.node.shared.throttle
    monkeypatch.setattr(throttle, "_default", parse_rate("1/minute"))
    await as_saboojsathi(f"/{SCHOOLS}/1")
    await as_saboojsathi(f"/{SCHOOLS}/2")  # 429
    monkeypatch.setattr(type(harness.node.log), "available", property(lambda _s: False))
    await as_saboojsathi(school)  # 503 fail closed
    return tokens


async def test_every_failure_is_logged_in_one_unbroken_chain(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _every_kind_of_failure(harness, monkeypatch)

    records = await harness.records()

    statuses = [r["status"] for r in records]
    for status in (200, 401, 403, 422, 400, 504, 429, 503):
        assert status in statuses, status
    assert [r["seq"] for r in records] == list(range(len(records)))
    assert all(
        records[i]["prev_hash"] == records[i - 1]["hash"]
        for i in range(1, len(records))
    )
    aborted = [r for r in records if r["reason"] == "client_aborted"]
    assert len(aborted) == 1
    assert aborted[0]["upstream_called"] is False
    timeout = next(r for r in records if r["status"] == 504)
    assert timeout["decision"] == "upstream_error"
    limited = next(r for r in records if r["status"] == 429)
    assert limited["client_id"] == str(SABOOJSATHI)
    assert limited["upstream_called"] is False


async def test_no_log_line_or_record_carries_a_secret_or_a_control_character(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    with capture_logs() as events:
        tokens = await _every_kind_of_failure(harness, monkeypatch)
    records = await harness.records()

    strings = [s for item in [*events, *records] for s in _strings(item)]
    assert events
    assert not [s for s in strings if contains_personal_number(s)]
    assert not [s for s in strings if _CONTROL.search(s)]
    assert not [s for s in strings for t in tokens if t[:32] in s]
    assert not [s for s in strings if "999901234563" in s or "Bearer" in s]
