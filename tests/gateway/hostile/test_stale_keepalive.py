"""C17 A over real sockets: a provider that ends idle keep-alive connections sooner
than the node's pool would (scaled down: provider 0.3 s, node pool 30 s).

The node either sees the provider's close while the connection is idle and opens
a new one, or meets the close only when it sends on the stale connection (the
close and the request cross, open-webui/terminals#24); then a GET is retried
once on a fresh connection. Either way the client gets the provider's 200."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from gateway.keyring import SigningKey
from tests.gateway.conftest import Harness
from tests.gateway.hostile.support import (
    SCHOOLS,
    Provider,
    outcome,
    route_to,
    send,
    signed_answer,
)

pytestmark = [pytest.mark.anyio, pytest.mark.sockets]

SCHOOL = b'{"udise_code":"19110900503","name":"Sample School"}'
PROVIDER_KEEPALIVE_S = 0.3
NODE_KEEPALIVE_S = 30.0


@contextlib.asynccontextmanager
async def keepalive_provider(
    key: SigningKey, *, notices_expiry_on_request: bool
) -> AsyncIterator[Provider]:
    """A provider on 127.0.0.1 that keeps a connection idle for at most
    :data:`PROVIDER_KEEPALIVE_S`.

    By default it closes the connection when that time is up. With
    ``notices_expiry_on_request`` it finds out only when the next request
    arrives, and closes without an answer: the request met a closed connection.
    """
    state = Provider(0, [])

    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        state.connections += 1
        answered_at: float | None = None
        try:
            while True:
                wait = None if answered_at is None else PROVIDER_KEEPALIVE_S
                if notices_expiry_on_request:
                    wait = None
                async with asyncio.timeout(wait):
                    head = await reader.readuntil(b"\r\n\r\n")
                idle = time.monotonic() - (answered_at or time.monotonic())
                if notices_expiry_on_request and idle > PROVIDER_KEEPALIVE_S:
                    return
                state.requests.append(head)
                writer.write(signed_answer(key, 200, SCHOOL))
                await writer.drain()
                answered_at = time.monotonic()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 1)


@pytest.mark.parametrize(
    ("notices_expiry_on_request", "attempts"),
    [(False, 1), (True, 2)],
    ids=["closed-while-idle", "close-crosses-request"],
)
async def test_get_after_the_provider_closed_an_idle_connection_is_answered(
    harness: Harness,
    monkeypatch: pytest.MonkeyPatch,
    notices_expiry_on_request: bool,
    attempts: int,
) -> None:
    key = harness.demo.registry_key
    assert key is not None

    async with keepalive_provider(
        key, notices_expiry_on_request=notices_expiry_on_request
    ) as fake:
        route_to(harness, monkeypatch, fake.port, keepalive_s=NODE_KEEPALIVE_S)
        first = await send(harness, "GET", f"/{SCHOOLS}/19110900503")
        await asyncio.sleep(PROVIDER_KEEPALIVE_S * 3)
        second = await send(harness, "GET", f"/{SCHOOLS}/19110900503")

    assert (first.status_code, second.status_code) == (200, 200)
    assert second.body == SCHOOL
    assert len(fake.requests) == 2
    assert fake.connections == 2
    assert (await outcome(harness, first))["upstream_attempts"] == 1
    record = await outcome(harness, second)
    assert record["decision"] == "forwarded"
    assert record["upstream_attempts"] == attempts
