"""Framing over raw sockets: the node's HTTP server under hostile inputs (C01-C19).

The node runs in process behind uvicorn with :class:`MediatorHttpProtocol` on a
loopback port; each case's bytes are written as they are, and the test reads the
whole stream back, so a second response or an open connection would show.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import orjson
import pytest
import uvicorn
from uvicorn.server import ServerState

from gateway.app import MediatorApp, app_for_node
from gateway.client import DepartmentClient
from gateway.demo.setup import prepare
from gateway.deployment import load_deployment
from gateway.identifiers import ClientId, ServiceId
from gateway.keyring import SigningKey
from gateway.node import Node
from gateway.server import MediatorHttpProtocol, server_options
from gateway.settings import LimitSettings
from gateway.signing import sign_response
from registry_stub.app import create_app as create_registry
from registry_stub.seed import sample_students
from tests.gateway.conftest import IFMS, SABOOJSATHI, Harness

pytestmark = [pytest.mark.anyio, pytest.mark.sockets]

STUDENTS = ServiceId(ClientId("WB", "GOV", "SED", "banglarshiksha"), "students")
SEARCH = f"/r1/{STUDENTS}/beneficiary-check".encode()
EXPORT = f"/r1/{STUDENTS}/export".encode()
STUDENTS_ID = str(STUDENTS).encode()
BODY_40 = b'{"udise_code":"19110900503","class":"V"}'
DATA_31 = b'{"student_id":"WB-2019-000123"}'
READ_TIMEOUT_S = 5.0


@dataclass
class Served:
    harness: Harness
    port: int
    host: bytes
    upstream: list[httpx.Request] = field(default_factory=list)

    def head(self, method: bytes = b"POST", target: bytes = SEARCH) -> bytes:
        """A request line and Host; the case adds its own headers."""
        return method + b" " + target + b" HTTP/1.1\r\nHost: " + self.host + b"\r\n"

    async def send(self, data: bytes) -> bytes:
        """Write ``data``; read everything until the node closes (or time runs out)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(data)
            await writer.drain()
            return await _read_all(reader)
        finally:
            writer.close()

    async def send_and_leave(self, data: bytes) -> None:
        """Write ``data`` and close the connection at once."""
        _, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(data)
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def records(self) -> list[dict[str, object]]:
        return await self.harness.records()

    async def new_records(self, before: int) -> list[dict[str, object]]:
        """Records after the first ``before``, once at least one has been written.

        A client that went away is logged after its connection closed, so the
        test waits for that record rather than for the (absent) answer.
        """
        records: list[dict[str, object]] = []

        async def written() -> bool:
            records[:] = await self.records()
            return len(records) > before

        async with asyncio.timeout(READ_TIMEOUT_S):
            for _ in itertools.count():
                if await written():
                    return records[before:]
                await asyncio.sleep(0.02)
        return []


async def _read_all(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    async with asyncio.timeout(READ_TIMEOUT_S):
        while chunk := await reader.read(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    rest: bytes


def parse_reply(data: bytes) -> Reply:
    """The first response on the stream and whatever follows it."""
    head, _, after = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    return Reply(status, headers, after[:length], after[length:])


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """One event loop for the module, so that one node serves every test."""
    return "asyncio"


@asynccontextmanager
async def _harness(root: Path, registry_db: Path) -> AsyncIterator[Harness]:
    """The ``harness`` fixture's node, built once for this module."""
    demo = prepare(root, registry_db=registry_db)
    registry_key = demo.registry_key
    if registry_key is None:
        raise RuntimeError("the deployment has no registry key")

    def sign(status: int, headers: dict[str, str], body: bytes) -> dict[str, str]:
        return sign_response(registry_key, status=status, headers=headers, body=body)

    with pytest.MonkeyPatch.context() as env:
        for name, value in demo.environ().items():
            env.setenv(name, value)
        deployment = load_deployment(demo.config_dir, demo.state_dir)
        registry = create_registry(registry_db, response_signer=sign)
        registry_http = httpx.AsyncClient(transport=httpx.ASGITransport(registry))
        node = await Node.start(
            deployment, http_client=registry_http, passphrase=demo.passphrase
        )
        app = app_for_node(node)

        def make_client(
            cid: ClientId, key: SigningKey | None = None
        ) -> DepartmentClient:
            return DepartmentClient(
                client_id=cid,
                key=key or demo.client_keys[cid],
                audience=demo.audience,
                base_url=demo.mediator_url,
                http=registry_http,
            )

        try:
            yield Harness(demo, node, app, registry_http, registry_http, make_client)
        finally:
            await node.stop()
            await registry_http.aclose()


@pytest.fixture(scope="module")
async def node_server(
    tmp_path_factory: pytest.TempPathFactory, registry_db: Path
) -> AsyncIterator[Served]:
    """One node behind the real HTTP server on a loopback port, for the module."""
    root = tmp_path_factory.mktemp("server") / "deployment"
    async with _harness(root, registry_db) as harness:
        seen: list[httpx.Request] = []

        async def record(request: httpx.Request) -> None:
            seen.append(request)

        harness.registry_http.event_hooks["request"].append(record)
        config = uvicorn.Config(harness.app, lifespan="off", **server_options())
        server = uvicorn.Server(config)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        task = asyncio.create_task(server.serve(sockets=[sock]))
        await _until(lambda: server.started)
        host = f"127.0.0.1:{harness.demo.mediator_port}".encode()
        try:
            yield Served(harness, sock.getsockname()[1], host, seen)
        finally:
            server.should_exit = True
            await task
            sock.close()


@pytest.fixture
def served(node_server: Served) -> Served:
    """The module's server, with a fresh view of what reached the provider."""
    node_server.upstream.clear()
    return node_server


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(READ_TIMEOUT_S):
        for _ in itertools.count():
            if condition():
                return
            await asyncio.sleep(0.01)


async def assert_refused(
    served: Served, data: bytes, status: int, reason: str, logged: str | None = None
) -> None:
    """One X-Road error with ``reason``, closed, nothing forwarded, one record
    (whose reason is ``logged`` where the log keeps a finer one)."""
    before = len(await served.records())

    reply = parse_reply(await served.send(data))

    assert reply.status == status
    assert reply.headers["x-road-error"].endswith(f".{reason}")
    assert orjson.loads(reply.body)["type"] == reply.headers["x-road-error"]
    assert reply.headers["connection"] == "close"
    assert reply.rest == b""  # the stream ended: no second response
    assert served.upstream == []
    records = (await served.records())[before:]
    expected = [("rejected", logged or reason)]
    assert [(r["decision"], r["reason"]) for r in records] == expected
    assert records[0]["upstream_called"] is False


def smuggled(served: Served) -> bytes:
    return b"GET " + EXPORT + b" HTTP/1.1\r\nHost: " + served.host + b"\r\n\r\n"


# -- C01: Content-Length and Transfer-Encoding ---------------------------------------


@pytest.mark.parametrize(
    "framing",
    [
        b"Content-Length: 102\r\nTransfer-Encoding: chunked\r\n",
        b"Content-Length: 102\r\nTransfer-Encoding: chunked\t\r\n",
        b"Content-Length: 102\r\nTransfer-Encoding : chunked\r\n",
        b"Content-Length: 102\r\nTransfer-Encoding: xchunked\r\n",
        b"Content-Length: 102\r\nTransfer-Encoding: chunked, identity\r\n",
        b"Content-Length: 102\r\nTransfer-Encoding: chunked\r\n"
        b"Transfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: chunked\t\r\n",
        b"Transfer-Encoding : chunked\r\n",
        b"Transfer-Encoding: xchunked\r\n",
        b"Transfer-Encoding: chunked, identity\r\n",
        b"Transfer-Encoding: gzip, chunked\r\n",
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
    ],
)
async def test_length_and_coding_conflicts_are_refused_and_never_smuggled(
    served: Served, framing: bytes
) -> None:
    data = served.head() + b"Content-Type: application/json\r\n" + framing
    data += b"\r\n0\r\n\r\n" + smuggled(served)

    await assert_refused(served, data, 400, "ambiguous_message_length")


async def test_a_refused_frame_never_stores_a_student_id_from_its_path(
    served: Served,
) -> None:
    target = b"/r1/WB/GOV/SED/banglarshiksha/students/applicants/WB201900001236/x"
    data = served.head(target=target) + b"Content-Length: 5\r\n"
    data += b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"

    await assert_refused(served, data, 400, "ambiguous_message_length")

    record = (await served.records())[-1]
    assert "WB201900001236" not in record["path"]
    assert "/applicants/" in record["path"]


@pytest.mark.parametrize("with_length", [True, False])
async def test_chunked_on_http10_is_refused(served: Served, with_length: bool) -> None:
    data = served.head().replace(b"HTTP/1.1", b"HTTP/1.0")
    data += b"Content-Length: 102\r\n" if with_length else b""
    data += b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled(served)

    await assert_refused(served, data, 400, "ambiguous_message_length")


@pytest.mark.parametrize("method", [b"GET", b"HEAD", b"DELETE"])
@pytest.mark.parametrize(
    "framing",
    [b"Content-Length: {n}\r\n", b"Transfer-Encoding: chunked\r\n"],
    ids=["content-length", "chunked"],
)
async def test_a_body_on_a_bodyless_method_is_refused_and_never_parsed(
    served: Served, method: bytes, framing: bytes
) -> None:
    """The body of a GET is a second request to a server that ignores it (RFC 9110
    section 9.3.1): refused unread, and the connection closed behind it."""
    inner = smuggled(served)
    if b"chunked" in framing:
        content = b"%x\r\n" % len(inner) + inner + b"\r\n0\r\n\r\n"
    else:
        content = inner
    data = served.head(method, EXPORT) + framing.replace(b"{n}", b"%d" % len(content))
    before = len(await served.records())

    # A HEAD answer has no body, so the reply is checked here, not by assert_refused.
    reply = parse_reply(await served.send(data + b"\r\n" + content))

    assert reply.status == 400
    assert reply.headers["x-road-error"] == "Client.body_not_allowed"
    assert reply.headers["connection"] == "close"
    assert reply.rest == b""  # the stream ended: the inner request was never parsed
    assert served.upstream == []
    records = (await served.records())[before:]
    assert [(r["reason"], r["upstream_called"]) for r in records] == [
        ("body_not_allowed", False)
    ]


# -- C02: two Content-Length headers -------------------------------------------------


@pytest.mark.parametrize(
    "lengths",
    [
        b"Content-Length: 40\r\nContent-Length: 0\r\n",
        b"Content-Length: 40, 0\r\n",
        b"Content-Length: 40\r\nContent-Length: 40\r\n",
    ],
)
async def test_repeated_content_length_is_refused(
    served: Served, lengths: bytes
) -> None:
    data = served.head() + b"Content-Type: application/json\r\n" + lengths
    data += b"\r\n" + BODY_40

    await assert_refused(served, data, 400, "duplicate_content_length")


async def test_signed_content_length_is_refused(served: Served) -> None:
    data = served.head() + b"Content-Length: +40\r\n\r\n" + BODY_40

    await assert_refused(served, data, 400, "ambiguous_message_length")


# -- C04: malformed chunked bodies ---------------------------------------------------


def chunked(served: Served, body: bytes) -> bytes:
    head = served.head() + b"Content-Type: application/json\r\n"
    return head + b"Transfer-Encoding: chunked\r\n\r\n" + body


@pytest.mark.parametrize(
    "body",
    [
        b"1f\r\n" + DATA_31 + b"XX0\r\n\r\n",
        b"1f-extra-bytes\r\n" + DATA_31 + b"\r\n0\r\n\r\n",
        b"1f;note=x\ny\r\n" + DATA_31 + b"\r\n0\r\n\r\n",
        b"10000000000000001f\r\n" + DATA_31 + b"\r\n0\r\n\r\n",
    ],
    ids=["A-no-crlf", "B-size-junk", "C-bare-lf", "D-overflow"],
)
async def test_malformed_chunks_are_refused(served: Served, body: bytes) -> None:
    await assert_refused(served, chunked(served, body), 400, "malformed_chunked_body")


@pytest.mark.parametrize(
    ("body", "arrived"),
    [
        (b"1f\r\n" + DATA_31 + b"XX0\r\n\r\n", 31),
        (b"1f\r\n" + DATA_31 + b"\r\nzz\r\n" + DATA_31 + b"\r\n0\r\n\r\n", 31),
        (b"1f\r\n" + DATA_31 + b"\r\n1f\r\n" + DATA_31 + b"XX0\r\n\r\n", 62),
    ],
    ids=["no-crlf", "bad-second-size", "no-crlf-after-second"],
)
async def test_a_malformed_chunk_is_logged_with_the_data_that_came_before_it(
    served: Served, body: bytes, arrived: int
) -> None:
    """Sent in one write, the body fails in the parser before the app reads any
    of it; the record still counts the chunk data that arrived."""
    await assert_refused(served, chunked(served, body), 400, "malformed_chunked_body")

    assert (await served.records())[-1]["request_bytes"] == arrived


async def test_truncated_chunked_body_is_logged_as_aborted(served: Served) -> None:
    before = len(await served.records())

    await served.send_and_leave(chunked(served, b"1f\r\n" + DATA_31 + b"\r\n"))

    records = await served.new_records(before)
    assert served.upstream == []
    assert [(r["reason"], r["upstream_called"]) for r in records] == [
        ("client_aborted", False)
    ]
    assert records[0]["request_bytes"] == len(DATA_31)


async def test_valid_chunked_body_is_forwarded_with_a_computed_length(
    served: Served,
) -> None:
    student = sample_students(
        served.harness.demo.registry_db, with_bank_account=True, limit=1
    )[0]
    body = orjson.dumps(
        {
            "beneficiaryId": student["student_id"],
            "bankAccountNo": student["bank_account"]["account_number"],
            "ifscCode": student["bank_account"]["ifsc"],
        }
    )
    client = served.harness.client(IFMS)
    data = served.head() + b"Authorization: Bearer " + client.assertion().encode()
    data += b"\r\nX-Road-Client: " + str(IFMS).encode()
    data += b"\r\nX-Road-Purpose: ifms-beneficiary-check\r\nConnection: close\r\n"
    data += b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    data += b"%x;ext=1\r\n" % len(body) + body + b"\r\n0\r\nX-Trailer: 1\r\n\r\n"

    reply = parse_reply(await served.send(data))

    assert reply.status == 200, reply.body
    [forwarded] = served.upstream
    assert "transfer-encoding" not in forwarded.headers
    assert "x-trailer" not in forwarded.headers
    assert forwarded.headers["content-length"] == str(len(forwarded.content))


# -- C12: raw control bytes in header values -----------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        b"X-Request-Id: 7b0c\x00Set-Cookie: sid=1\r\n",
        b"X-Request-Id: 7b0c\rSet-Cookie: sid=1\r\n",
        b"X-Request-Id: 7b0c\nSet-Cookie: sid=1\r\n",
        b"X-Request-Id: 7b0c\x01\r\n",
        b"X-Request-Id: 7b0c\x7f\r\n",
        b"X-Request-Id: 7b0c\r\n Set-Cookie: sid=1\r\n",
    ],
    ids=["nul", "bare-cr", "bare-lf", "ctl", "del", "obs-fold"],
)
async def test_raw_control_bytes_in_headers_are_refused(
    served: Served, header: bytes
) -> None:
    data = served.head(b"GET", EXPORT) + header + b"\r\n"

    await assert_refused(served, data, 400, "invalid_header")


async def test_raw_nul_in_the_target_is_refused(served: Served) -> None:
    data = served.head(b"GET", EXPORT + b"\x00x") + b"\r\n"

    await assert_refused(served, data, 400, "invalid_path")


# -- C16: Host variants and absolute-form targets ------------------------------------


@pytest.mark.parametrize(
    ("head", "logged"),
    [
        (b"GET /r1/x HTTP/1.1\r\n", None),
        (b"GET /r1/x HTTP/1.1\r\nHost: registry.wbsed.internal:8443\r\n", None),
        (b"GET /r1/x HTTP/1.1\r\nHost: gw.mediator.example@attacker.example\r\n", None),
        (b"GET /r1/x HTTP/1.1\r\nHost: {host}\r\nHost: {host}\r\n", "duplicate_host"),
        (
            b"POST http://registry.wbsed.internal:8443/api/students/search HTTP/1.1"
            b"\r\nHost: {host}\r\nContent-Length: 0\r\n",
            None,
        ),
        (b"GET http://user@{host}/r1/x HTTP/1.1\r\nHost: {host}\r\n", None),
    ],
    ids=["none", "internal", "userinfo", "twice", "absolute", "absolute-userinfo"],
)
async def test_hosts_outside_the_allow_list_are_refused(
    served: Served, head: bytes, logged: str | None
) -> None:
    data = head.replace(b"{host}", served.host) + b"\r\n"

    await assert_refused(served, data, 400, "invalid_host", logged)


async def test_absolute_form_naming_this_node_is_served(served: Served) -> None:
    target = b"http://" + served.host + EXPORT
    client = served.harness.client(SABOOJSATHI)
    data = served.head(b"GET", target) + b"Authorization: Bearer "
    data += client.assertion().encode() + b"\r\nX-Road-Client: "
    data += str(SABOOJSATHI).encode() + b"\r\nConnection: close\r\n\r\n"

    reply = parse_reply(await served.send(data))

    assert reply.status == 403  # the export is not granted: it reached step 4
    assert reply.headers["x-road-error"].endswith(".access_denied")


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"GET /r1/x\r\n", "malformed_request"),
        (b"GET /r1/x HTTP/2.0\r\n", "malformed_request"),
        (b"GET /r1/x HTTP/1.1\n", "malformed_request"),
        (b"G\x01T /r1/x HTTP/1.1\r\n", "malformed_request"),
    ],
    ids=["http09", "http2", "bare-lf", "method"],
)
async def test_request_lines_other_than_http11_are_refused(
    served: Served, line: bytes, reason: str
) -> None:
    data = line + b"Host: " + served.host + b"\r\n\r\n"

    await assert_refused(served, data, 400, reason)


# -- C18: slow clients ----------------------------------------------------------------


@pytest.fixture
def quick_limits(monkeypatch: pytest.MonkeyPatch) -> LimitSettings:
    limits = LimitSettings(
        header_timeout_s=0.3,
        body_timeout_s=0.3,
        body_min_rate=1024,
        max_connections_per_peer=4,
    )
    monkeypatch.setattr(MediatorHttpProtocol, "_limits", lambda _self: limits)
    return limits


async def test_slow_head_gets_408_and_a_record(
    served: Served, quick_limits: LimitSettings
) -> None:
    await assert_refused(served, served.head(), 408, "client_timeout")


async def test_slow_body_gets_408_and_a_record(
    served: Served, quick_limits: LimitSettings
) -> None:
    data = served.head() + b"Content-Length: 40\r\n\r\n" + BODY_40[:3]

    await assert_refused(served, data, 408, "client_timeout")

    assert (await served.records())[-1]["request_bytes"] == 3


async def test_idle_connection_is_closed_without_a_record(
    served: Served, quick_limits: LimitSettings
) -> None:
    before = len(await served.records())

    assert await served.send(b"") == b""
    assert len(await served.records()) == before


async def test_connections_over_the_per_peer_cap_are_refused(
    served: Served, quick_limits: LimitSettings
) -> None:
    held = [
        await asyncio.open_connection("127.0.0.1", served.port)
        for _ in range(quick_limits.max_connections_per_peer)
    ]
    try:
        await asyncio.sleep(0.05)
        reply = parse_reply(await served.send(b""))
    finally:
        for _, writer in held:
            writer.close()

    assert reply.status == 429
    assert reply.headers["x-road-error"].endswith(".too_many_concurrent")


# -- C19: oversized bodies --------------------------------------------------------


async def test_declared_oversize_is_refused_without_100_continue(
    served: Served,
) -> None:
    data = served.head() + b"Content-Type: application/json\r\n"
    data += b"Content-Length: 52428800\r\nExpect: 100-continue\r\n\r\n"

    answer = await served.send(data)

    assert not answer.startswith(b"HTTP/1.1 100")
    assert parse_reply(answer).status == 413


async def test_chunked_oversize_is_refused_after_the_cap(served: Served) -> None:
    cap = served.harness.node.deployment.settings.limits.max_body_bytes
    piece = b"[" + b"0," * 32767 + b"0"
    chunks = b"".join(b"%x\r\n" % len(piece) + piece + b"\r\n" for _ in range(33))
    assert len(piece) * 33 > cap

    await assert_refused(served, chunked(served, chunks), 413, "body_too_large")


async def test_refusal_after_a_pipelined_request_waits_for_its_answer(
    served: Served,
) -> None:
    first = served.head(b"GET", EXPORT) + b"\r\n"
    second = served.head() + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"
    before = len(await served.records())

    stream = await served.send(first + second + b"\r\n0\r\n\r\n" + smuggled(served))

    answer = parse_reply(stream)
    refusal = parse_reply(answer.rest)
    assert answer.status == 401
    assert refusal.status == 400
    assert refusal.headers["x-road-error"].endswith(".ambiguous_message_length")
    assert refusal.rest == b""
    records = (await served.records())[before:]
    assert [r["reason"] for r in records] == [
        "missing_credential",
        "ambiguous_message_length",
    ]


@pytest.mark.parametrize(
    "extra",
    [(b"X-Pad: " + b"a" * 1000 + b"\r\n") * 40, b"X-Pad: " + b"a" * 40_000],
    ids=["many-lines", "one-unterminated-value"],
)
async def test_oversized_heads_are_refused_before_they_end(
    served: Served, extra: bytes
) -> None:
    data = served.head(b"GET", EXPORT) + extra

    await assert_refused(served, data, 431, "headers_too_large")


@pytest.mark.parametrize(
    "target",
    [EXPORT + b"#frag", EXPORT + b"?x=1#frag", b"/r1/" + STUDENTS_ID + b"/#/export"],
)
async def test_a_target_with_a_fragment_is_refused(
    served: Served, target: bytes
) -> None:
    data = served.head(b"GET", target) + b"\r\n"

    await assert_refused(served, data, 400, "invalid_path", "fragment_in_target")
    record = (await served.records())[-1]
    assert (record["peer"], record["client_ip"]) == ("127.0.0.1", "127.0.0.1")


async def test_overlong_target_is_refused(served: Served) -> None:
    data = served.head(b"GET", EXPORT + b"/" + b"a" * 5000) + b"\r\n"

    await assert_refused(served, data, 414, "uri_too_long")


# -- where the limits come from ----------------------------------------------------


@pytest.mark.parametrize("factory", [False, True], ids=["instance", "factory"])
async def test_limits_are_the_node_s_whether_the_app_is_given_or_made(
    factory: bool,
) -> None:
    # Worker processes build their app with a factory (app_from_env): uvicorn's
    # config then holds the factory, and only the loaded app is the node's.
    limits = LimitSettings(max_connections_per_peer=3, max_uri_bytes=300)
    settings = SimpleNamespace(limits=limits)
    mediator = MediatorApp()
    mediator.node = cast(
        Node, SimpleNamespace(deployment=SimpleNamespace(settings=settings))
    )
    app: Any = (lambda: mediator) if factory else mediator
    config = uvicorn.Config(app, factory=factory, lifespan="off", **server_options())
    config.load()

    protocol = MediatorHttpProtocol(config, ServerState(), {})

    assert protocol._limits() is limits
