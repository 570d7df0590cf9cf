"""C18 over real sockets: 500 slowloris connections from one loopback address and
one slow body from another, while a normal client on a third keeps being served.

The node runs behind uvicorn with its own protocol, on deadlines scaled down
(head and body 1.5 s; the attack sends one header byte every 0.5 s) and a server
whose capacity (400 connections) the attack alone would exhaust: the normal
client is served only because the per-peer cap refuses the attack's surplus.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import resource
from collections import Counter
from collections.abc import Iterator

import httpx
import orjson
import pytest

from gateway.settings import LimitSettings
from tests.gateway.conftest import Harness
from tests.gateway.hostile.support import (
    KANYASHREE,
    SABOOJSATHI,
    SCHOOLS,
    STUDENTS,
    Spy,
    auth_headers,
    serving,
)

pytestmark = [pytest.mark.anyio, pytest.mark.sockets]

ATTACK = 500
ATTACKER, NORMAL, SLOW_BODY = "127.0.0.1", "127.0.0.2", "127.0.0.3"
LIMITS = LimitSettings(
    header_timeout_s=1.5,
    body_timeout_s=1.5,
    body_min_rate=1024,
    max_connections_per_peer=64,
)
TRICKLE_S = 0.5
# Out of step with the body deadline, so that no byte arrives as it expires.
BODY_TRICKLE_S = 0.4
NORMAL_REQUESTS = 4
# Sockets the test needs besides the attack's two per connection (both ends).
FD_RESERVE = 256
# Upper bound for any one connection to end; never reached by a working node.
WAIT_S = 30.0


@dataclasses.dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    closed: bool


@pytest.fixture
def attack_size() -> Iterator[int]:
    """:data:`ATTACK`, with the soft open-file limit raised to fit it if needed;
    smaller only if the hard limit cannot fit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 2 * ATTACK + FD_RESERVE
    if soft < needed:
        raised = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
        resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
    allowed = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    try:
        yield min(ATTACK, (allowed - FD_RESERVE) // 2)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def connect(
    port: int, source: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def read_answer(reader: asyncio.StreamReader) -> Answer:
    """The response head, and whether the node closed the connection after it;
    status -1 for a reset, which can destroy an answer before it is read."""
    async with asyncio.timeout(WAIT_S):
        try:
            data = await reader.read()
        except ConnectionResetError:
            return Answer(-1, {}, closed=True)
    head = data.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    status = int(head[0].split(" ")[1]) if head[0] else 0
    fields = (line.partition(":") for line in head[1:])
    headers = {name.strip().lower(): value.strip() for name, _, value in fields}
    return Answer(status, headers, closed=reader.at_eof())


async def slowloris(port: int, request_line: bytes) -> asyncio.Task[Answer]:
    """Connect and send a request line and Host; the task then sends one header
    byte every :data:`TRICKLE_S` until the node answers and closes."""
    reader, writer = await connect(port, ATTACKER)
    writer.write(request_line)

    async def trickle() -> None:
        with contextlib.suppress(ConnectionError):
            while not writer.is_closing():
                await writer.drain()
                await asyncio.sleep(TRICKLE_S)
                writer.write(b"a")

    async def answered() -> Answer:
        dripping = asyncio.create_task(trickle())
        try:
            return await read_answer(reader)
        finally:
            dripping.cancel()
            writer.close()

    return asyncio.create_task(answered())


async def settled(attack: list[asyncio.Task[Answer]], held: int) -> None:
    """Wait until at most ``held`` attack connections are still open."""
    pending = set(attack)
    async with asyncio.timeout(WAIT_S):
        while len(pending) > held:
            _, pending = await asyncio.wait(
                pending, return_when=asyncio.FIRST_COMPLETED
            )


async def slow_body(port: int, harness: Harness, host: str) -> Answer:
    """Whole headers for a 40-byte body, then one body byte every
    :data:`BODY_TRICKLE_S`."""
    reader, writer = await connect(port, SLOW_BODY)
    fields = auth_headers(harness, KANYASHREE, host=host)
    fields["content-type"] = "application/json"
    fields["content-length"] = "40"
    head = f"POST /r1/{STUDENTS}/verify-enrolment HTTP/1.1\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in fields.items()
    )
    writer.write(head.encode("latin-1") + b"\r\n")

    async def trickle() -> None:
        with contextlib.suppress(ConnectionError):
            for byte in b'{"applicant":{"registry_uid":"WB-2019-1"}':
                await writer.drain()
                writer.write(bytes([byte]))
                await asyncio.sleep(BODY_TRICKLE_S)

    dripping = asyncio.create_task(trickle())
    try:
        return await read_answer(reader)
    finally:
        dripping.cancel()
        writer.close()


async def normal_client(port: int, harness: Harness, host: str) -> list[int]:
    """Whole requests, one connection each, while the attack goes on."""
    statuses: list[int] = []
    for _ in range(NORMAL_REQUESTS):
        reader, writer = await connect(port, NORMAL)
        fields = auth_headers(harness, SABOOJSATHI, host=host, connection="close")
        head = f"GET /r1/{SCHOOLS}/?district=Kolkata HTTP/1.1\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in fields.items()
        )
        writer.write(head.encode("latin-1") + b"\r\n")
        got = await read_answer(reader)
        statuses.append(got.status)
        writer.close()
        await asyncio.sleep(TRICKLE_S / 2)
    return statuses


async def test_slow_clients_are_cut_off_and_a_normal_client_is_served(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, attack_size: int
) -> None:
    node = harness.node
    settings = node.deployment.settings.model_copy(update={"limits": LIMITS})
    monkeypatch.setattr(
        node, "deployment", dataclasses.replace(node.deployment, settings=settings)
    )
    spy = Spy(harness, monkeypatch)
    host = httpx.URL(harness.demo.mediator_url).netloc.decode()
    line = f"POST /r1/{STUDENTS}/search HTTP/1.1\r\nHost: {host}\r\n".encode()
    before = len(await harness.records())

    async with serving(harness, capacity=attack_size * 4 // 5) as port:
        # The attack first: its connections over the cap are refused at once.
        attack = [await slowloris(port, line) for _ in range(attack_size)]
        await settled(attack, LIMITS.max_connections_per_peer)
        # While the rest still hold their connections, the others are served.
        body_task = asyncio.create_task(slow_body(port, harness, host))
        served = await normal_client(port, harness, host)
        slow = await asyncio.gather(*attack)
        body = await body_task

    assert served == [200] * NORMAL_REQUESTS
    # Every slow connection was answered once and closed: 408 at its deadline,
    # or 429 at once when its peer already held the most connections it may.
    endings = Counter((a.status, a.headers.get("x-road-error", "")) for a in slow)
    timed_out = endings[(408, "Client.client_timeout")]
    refused = endings[(429, "Client.too_many_concurrent")]
    assert timed_out + refused == attack_size, endings
    assert timed_out > 0
    assert refused > 0
    assert all(a.closed and a.headers.get("connection") == "close" for a in slow)
    assert (body.status, body.closed) == (408, True)
    assert body.headers["x-road-error"].endswith(".client_timeout")

    # Nothing incompletely received went upstream: only the normal requests did.
    assert [call[0] for call in spy.calls] == ["GET"] * NORMAL_REQUESTS
    # One record per slow connection, saying how it ended.
    records = (await harness.records())[before:]
    slow_records = Counter(
        (r["peer"], r["reason"], r["status"]) for r in records if r["peer"] != NORMAL
    )
    assert slow_records == {
        (ATTACKER, "client_timeout", 408): timed_out,
        (ATTACKER, "too_many_connections", 429): refused,
        (SLOW_BODY, "client_timeout", 408): 1,
    }
    assert "WB-2019-1" not in orjson.dumps(records).decode()
