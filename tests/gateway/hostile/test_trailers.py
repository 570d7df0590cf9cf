"""C04 over real sockets: fields in a chunked request's trailer section are never
merged into the request's header set.

llhttp reports trailer fields through the same ``on_header`` callback as header
fields, and uvicorn's protocol appends them to the list the ASGI scope already
holds. Identity, purpose and digest must come from the header section only
(RFC 9110 section 6.5.1: a recipient must not merge trailer fields into the
header section unless their definition allows it); a request that puts them in
its trailer must be refused without reaching the provider.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.gateway.conftest import IFMS, Harness
from tests.gateway.hostile.support import STUDENTS, Spy, auth_headers, serving

pytestmark = [pytest.mark.anyio, pytest.mark.sockets]

PURPOSE = "ifms-beneficiary-check"
BODY = (
    b'{"beneficiaryId":"WB201900001235","bankAccountNo":"30012345671234",'
    b'"ifscCode":"SBIN0001234"}'
)
WAIT_S = 30.0


async def exchange(port: int, head: dict[str, str], trailer: dict[str, str]) -> int:
    """POST the beneficiary check as one chunk with ``trailer``; the status."""
    fields = {
        **head,
        "content-type": "application/json",
        "transfer-encoding": "chunked",
        "connection": "close",
    }
    lines = "".join(f"{name}: {value}\r\n" for name, value in fields.items())
    tail = "".join(f"{name}: {value}\r\n" for name, value in trailer.items())
    request = (
        f"POST /r1/{STUDENTS}/beneficiary-check HTTP/1.1\r\n{lines}\r\n".encode()
        + b"%x\r\n" % len(BODY)
        + BODY
        + b"\r\n0\r\n"
        + tail.encode()
        + b"\r\n"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        async with asyncio.timeout(WAIT_S):
            answer = await reader.read()
    finally:
        writer.close()
    return int(answer.split(b" ", 2)[1])


async def test_purpose_in_trailer_is_not_a_declared_purpose(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """X-Road-Purpose only in the trailer: refused, nothing forwarded."""
    spy = Spy(harness, monkeypatch)
    host = httpx.URL(harness.demo.mediator_url).netloc.decode()
    async with serving(harness) as port:
        status = await exchange(
            port, auth_headers(harness, IFMS, host=host), {"x-road-purpose": PURPOSE}
        )
    assert status == 403  # purpose_required, as with no purpose at all
    assert spy.calls == []


async def test_credential_in_trailer_is_not_a_credential(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Authorization and X-Road-Client only in the trailer: refused, nothing
    forwarded."""
    spy = Spy(harness, monkeypatch)
    host = httpx.URL(harness.demo.mediator_url).netloc.decode()
    credential = auth_headers(harness, IFMS, **{"x-road-purpose": PURPOSE})
    async with serving(harness) as port:
        status = await exchange(port, {"host": host}, credential)
    assert status == 401  # no credential in the header section
    assert spy.calls == []
