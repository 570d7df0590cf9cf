"""Tests for the provider client: error mapping, framing, retries and decoding."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
import respx

from gateway.errors import Reason, UpstreamError
from gateway.settings import UpstreamSettings
from gateway.upstream import (
    MalformedResponseError,
    Upstream,
    UpstreamResponse,
    identity_body,
    make_client,
)

pytestmark = pytest.mark.anyio

URL = "https://registry.wbsed.internal:8443/api/students/by-udise/19110900503"
SETTINGS = UpstreamSettings(connect_timeout_s=0.5, read_timeout_s=0.5)
Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


def mocked(handler: Handler, settings: UpstreamSettings = SETTINGS) -> Upstream:
    return Upstream(httpx.AsyncClient(transport=httpx.MockTransport(handler)), settings)


async def send(
    upstream: Upstream, method: str = "GET", body: bytes = b"", **headers: str
) -> UpstreamResponse:
    return await upstream.send(method, URL, headers, body, max_body_bytes=10_000)


async def failure(upstream: Upstream, method: str = "GET") -> UpstreamError:
    with pytest.raises(UpstreamError) as caught:
        await send(upstream, method)
    return caught.value


def raising(exc: Exception) -> Handler:
    async def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


def answering(response: httpx.Response) -> Handler:
    async def handler(request: httpx.Request) -> httpx.Response:
        return response

    return handler


# -- mapping failures (mock transport) ---------------------------------------------


@pytest.mark.parametrize(
    ("exc", "reason", "log_reason"),
    [
        (httpx.ConnectError("x"), Reason.UPSTREAM_UNAVAILABLE, "upstream_unavailable"),
        (
            httpx.ConnectTimeout("x"),
            Reason.UPSTREAM_TIMEOUT,
            "upstream_connect_timeout",
        ),
        (httpx.PoolTimeout("x"), Reason.UPSTREAM_TIMEOUT, "upstream_pool_timeout"),
        (httpx.ReadTimeout("x"), Reason.UPSTREAM_TIMEOUT, "upstream_timeout"),
        (httpx.WriteTimeout("x"), Reason.UPSTREAM_TIMEOUT, "upstream_timeout"),
        (
            MalformedResponseError("x"),
            Reason.UPSTREAM_PROTOCOL_VIOLATION,
            "upstream_protocol_violation",
        ),
        (
            httpx.UnsupportedProtocol("x"),
            Reason.UPSTREAM_UNAVAILABLE,
            "upstream_transport",
        ),
        (
            httpx.RemoteProtocolError("x"),
            Reason.UPSTREAM_CONNECTION_RESET,
            "upstream_connection_reset",
        ),
        (
            httpx.ReadError("x"),
            Reason.UPSTREAM_CONNECTION_RESET,
            "upstream_connection_reset",
        ),
    ],
)
async def test_transport_failures_map_to_fixed_reasons(
    exc: Exception, reason: Reason, log_reason: str
) -> None:
    """Each transport failure before an answer has one reason and log code."""
    error = await failure(mocked(raising(exc)), "POST")
    assert (error.reason, error.log_reason) == (reason, log_reason)


async def test_errors_name_no_address_or_library_text() -> None:
    """C17: no URL, host, port or exception text in what the client may see."""
    exc = httpx.ConnectError("Cannot connect to host registry.wbsed.internal:8443")
    error = await failure(mocked(raising(exc)))
    shown = f"{error} {error.message} {error.type} {error.log_reason}"
    for secret in ("registry", "wbsed.internal", "8443", "Cannot connect"):
        assert secret not in shown


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "get"])
async def test_idempotent_requests_are_retried_once_after_a_reset(method: str) -> None:
    """C17 A: a closed connection before any answer is retried once, fresh."""
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            raise httpx.RemoteProtocolError("closed")
        return httpx.Response(200)

    response = await send(mocked(handler), method)

    assert (response.status, response.attempts) == (200, 2)
    assert [r.extensions.get("mediator.fresh_connection") for r in seen] == [None, True]


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_other_requests_are_never_retried(method: str) -> None:
    """C17 B: the provider may have acted on the request, so no retry."""
    calls = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.RemoteProtocolError("closed")

    error = await failure(mocked(handler), method)

    assert error.reason is Reason.UPSTREAM_CONNECTION_RESET
    assert calls == 1


async def test_a_second_reset_is_not_retried_again() -> None:
    """At most one retry: two resets fail the exchange."""
    calls = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.RemoteProtocolError("closed")

    error = await failure(mocked(handler))
    assert (error.reason, calls) == (Reason.UPSTREAM_CONNECTION_RESET, 2)


@pytest.mark.parametrize(
    "exc",
    [httpx.ConnectError("x"), httpx.ReadTimeout("x"), MalformedResponseError("x")],
)
async def test_only_resets_are_retried(exc: Exception) -> None:
    """Timeouts, refused connections and garbage answers are not retried."""
    calls = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise exc

    await failure(mocked(handler))
    assert calls == 1


async def test_a_slow_answer_meets_the_deadline() -> None:
    """C17 C: connect timeout plus timeout_s bounds the whole attempt."""

    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200)

    upstream = mocked(handler, UpstreamSettings(connect_timeout_s=0.05))
    with pytest.raises(UpstreamError) as caught:
        await upstream.send("POST", URL, {}, b"", timeout_s=0.05, max_body_bytes=10)

    assert caught.value.reason is Reason.UPSTREAM_TIMEOUT
    assert caught.value.log_reason == "upstream_deadline"


# -- reading the answer (mock transport) --------------------------------------------


class _Body(httpx.AsyncByteStream):
    def __init__(self, *chunks: bytes | Exception) -> None:
        self._chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            if isinstance(chunk, Exception):
                raise chunk
            yield chunk


async def test_a_body_shorter_than_its_content_length_is_truncated() -> None:
    """C17 D: 1200 of 5000 declared bytes is UPSTREAM_TRUNCATED."""
    response = httpx.Response(
        200, headers={"content-length": "5000"}, stream=_Body(b"x" * 1200)
    )
    error = await failure(mocked(answering(response)))
    assert error.reason is Reason.UPSTREAM_TRUNCATED


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (httpx.ReadError("reset"), Reason.UPSTREAM_TRUNCATED),
        (httpx.RemoteProtocolError("closed"), Reason.UPSTREAM_TRUNCATED),
        (httpx.ReadTimeout("slow"), Reason.UPSTREAM_TIMEOUT),
    ],
)
async def test_a_failure_mid_body_is_never_retried(
    exc: Exception, reason: Reason
) -> None:
    """C17 D: once an answer started, a reset is a truncation, even for GET."""
    calls = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(200, stream=_Body(b"x" * 100, exc))

    error = await failure(mocked(handler))
    assert (error.reason, calls) == (reason, 1)


async def test_a_body_longer_than_its_content_length_is_a_violation() -> None:
    """More bytes than declared is a framing error on the provider's side."""
    response = httpx.Response(
        200, headers={"content-length": "3"}, stream=_Body(b"xxxx")
    )
    error = await failure(mocked(answering(response)))
    assert error.reason is Reason.UPSTREAM_PROTOCOL_VIOLATION


@pytest.mark.parametrize(
    "headers",
    [
        [("content-length", "10"), ("content-length", "11")],
        [("content-length", "-1")],
        [("content-length", "1e3")],
    ],
)
async def test_an_invalid_content_length_is_a_violation(
    headers: list[tuple[str, str]],
) -> None:
    """Two different or non-numeric Content-Length values are refused."""
    response = httpx.Response(200, headers=headers, stream=_Body(b"x" * 10))
    error = await failure(mocked(answering(response)))
    assert error.log_reason == "upstream_content_length"


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, stream=_Body(b"x" * 6000, b"x" * 6000)),
        httpx.Response(200, headers={"content-length": "20000"}, stream=_Body(b"")),
    ],
)
async def test_a_body_over_the_limit_is_refused(response: httpx.Response) -> None:
    """Over max_body_bytes, read or declared, is upstream_body_too_large."""
    error = await failure(mocked(answering(response)))
    assert error.reason is Reason.UPSTREAM_RESPONSE_INVALID
    assert error.log_reason == "upstream_body_too_large"


@pytest.mark.parametrize(
    ("method", "status"), [("HEAD", 200), ("GET", 204), ("GET", 304), ("POST", 204)]
)
async def test_bodyless_answers_drop_stray_bytes_and_note_them(
    method: str, status: int
) -> None:
    """C06: HEAD, 204 and 304 have no body; stray bytes are dropped and noted."""
    stray = b'{"student_id":"WB-2019-000123","aadhaar":"999901234563"}'
    response = httpx.Response(status, headers={"content-length": "56"}, content=stray)

    answer = await send(mocked(answering(response)), method)

    assert (answer.status, answer.body) == (status, b"")
    assert answer.notes == ("upstream_body_on_bodyless_response",)
    assert b"999901234563" not in repr(answer).encode()


async def test_hop_by_hop_headers_are_removed_from_the_answer() -> None:
    """Hop-by-hop headers, and those Connection names, never reach the exchange."""
    response = httpx.Response(
        200,
        headers=[
            ("Content-Type", "application/json"),
            ("Connection", "keep-alive, X-Internal-Route"),
            ("Keep-Alive", "timeout=5"),
            ("X-Internal-Route", "node-3"),
            ("Transfer-Encoding", "identity"),
            ("Content-Length", "2"),
            ("ETag", '"v1"'),
        ],
        stream=_Body(b"{}"),
    )
    answer = await send(mocked(answering(response)))
    assert answer.headers == [("content-type", "application/json"), ("etag", '"v1"')]
    assert (answer.body, answer.attempts, answer.notes) == (b"{}", 1, ())


async def test_request_is_framed_from_the_body_and_asks_for_identity() -> None:
    """Framing and hop-by-hop headers from the caller are dropped; the client frames."""
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    headers = {
        "Content-Length": "99",
        "Transfer-Encoding": "chunked",
        "Connection": "close",
        "Host": "attacker.example",
        "Accept-Encoding": "gzip",
        "X-Road-Client": "IN-EDU/GOV/WBSED/mdm-portal",
    }
    await mocked(handler).send("POST", URL, headers, b"{}", max_body_bytes=10)

    sent = seen[0].headers
    assert sent.get_list("content-length") == ["2"]
    assert "transfer-encoding" not in sent
    assert sent["host"] == "registry.wbsed.internal:8443"
    assert sent["accept-encoding"] == "identity"
    assert sent["x-road-client"] == "IN-EDU/GOV/WBSED/mdm-portal"


async def test_respx_routes_work_through_an_injected_transport() -> None:
    """respx routers plug in as the injected transport."""
    router = respx.MockRouter(assert_all_called=True)
    router.get(URL).mock(return_value=httpx.Response(200, json={"ok": True}))
    client = httpx.AsyncClient(transport=httpx.MockTransport(router.async_handler))

    answer = await Upstream(client, SETTINGS).send(
        "GET", URL, {}, b"", max_body_bytes=99
    )

    assert (answer.status, answer.body) == (200, b'{"ok":true}')


# -- identity_body ------------------------------------------------------------------

RECORD = (
    '{"student_id": "WB-2019-000123", "name": "শোভন রায়", "aadhaar": "999901234563"}'
)


def encoded(coding: str, body: bytes) -> UpstreamResponse:
    headers = [("content-type", "application/json"), ("content-encoding", coding)]
    return UpstreamResponse(200, headers, body, 1)


def raw_deflate(body: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(body) + compressor.flush()


@pytest.mark.parametrize(
    ("coding", "body"),
    [
        ("gzip", gzip.compress(RECORD.encode())),
        ("x-gzip", gzip.compress(RECORD.encode())),
        ("GZIP", gzip.compress(RECORD.encode())),
        ("deflate", zlib.compress(RECORD.encode())),
        ("deflate", raw_deflate(RECORD.encode())),
        ("gzip, identity", gzip.compress(RECORD.encode())),
        ("deflate, gzip", gzip.compress(zlib.compress(RECORD.encode()))),
    ],
)
def test_identity_body_decodes_what_it_can(coding: str, body: bytes) -> None:
    """C07: the decoded body is what redaction and mapping see, without the header."""
    decoded = identity_body(encoded(coding, body), max_body_bytes=1000)
    assert decoded.body == RECORD.encode()
    assert decoded.headers == [("content-type", "application/json")]


@pytest.mark.parametrize(
    "plain",
    [
        UpstreamResponse(200, [("content-type", "application/json")], b"{}", 1),
        encoded("identity", b"{}"),
    ],
)
def test_identity_body_returns_plain_answers_unchanged(
    plain: UpstreamResponse,
) -> None:
    """Without a content coding the response is returned as it is."""
    assert identity_body(plain, max_body_bytes=10) is plain


@pytest.mark.parametrize(
    ("coding", "body"),
    [
        ("br", b"\x1b\x00"),
        ("zstd", b"\x28\xb5\x2f\xfd"),
        ("gzip", b"not gzip at all"),
        ("gzip", gzip.compress(RECORD.encode())[:-10]),
        ("gzip", gzip.compress(RECORD.encode()) + b"trailing"),
        ("deflate", b"\xff\xff\xff"),
    ],
)
def test_identity_body_refuses_what_it_cannot_decode(coding: str, body: bytes) -> None:
    """C07: an undecodable coding is a protocol violation, never passed on."""
    with pytest.raises(UpstreamError) as caught:
        identity_body(encoded(coding, body), max_body_bytes=1000)
    assert caught.value.reason is Reason.UPSTREAM_PROTOCOL_VIOLATION
    assert caught.value.log_reason == "upstream_content_encoding"


def test_identity_body_stops_a_compression_bomb() -> None:
    """Inflating stops one byte past the limit."""
    bomb = gzip.compress(b"\x00" * 10_000_000)
    with pytest.raises(UpstreamError) as caught:
        identity_body(encoded("gzip", bomb), max_body_bytes=1000)
    assert caught.value.log_reason == "upstream_body_too_large"


# -- real connections on loopback ------------------------------------------------------

Reply = Callable[[int, bytes, asyncio.StreamWriter], Awaitable[bool]]
GENUINE = b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\ngenuine"


class Provider:
    """A scripted HTTP/1.1 provider on 127.0.0.1.

    ``reply(index, request, writer)`` answers the ``index``-th request it
    received (over all connections) and returns whether to keep the connection
    open.
    """

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        #: (connection number, request bytes) for every request received.
        self.requests: list[tuple[int, bytes]] = []
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/api/students"

    async def __aexit__(self, *exc_info: object) -> None:
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        connection = len(self._writers)
        self._writers.append(writer)
        while request := await _read_request(reader):
            self.requests.append((connection, request))
            if not await self.reply(len(self.requests) - 1, request, writer):
                break
        writer.close()


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return head + await reader.readexactly(length)
    except (asyncio.IncompleteReadError, ConnectionError):
        return b""


async def answer(writer: asyncio.StreamWriter, data: bytes) -> bool:
    writer.write(data)
    await writer.drain()
    return True


async def genuine(index: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
    return await answer(writer, GENUINE)


@pytest.fixture
async def node() -> AsyncIterator[Upstream]:
    """An Upstream over the real client, one pooled connection."""
    settings = UpstreamSettings(connect_timeout_s=1.0, read_timeout_s=0.3, pool_size=1)
    upstream = Upstream(make_client(settings), settings)
    yield upstream
    await upstream.aclose()


async def call(
    node: Upstream, method: str, url: str, body: bytes = b""
) -> UpstreamResponse:
    return await node.send(method, url, {}, body, max_body_bytes=10_000)


async def call_fails(node: Upstream, method: str, url: str) -> UpstreamError:
    with pytest.raises(UpstreamError) as caught:
        await call(node, method, url)
    return caught.value


@pytest.mark.sockets
async def test_real_request_is_framed_by_the_client(node: Upstream) -> None:
    """One Content-Length computed from the body, identity, and no cookie kept."""

    async def set_cookie(
        index: int, request: bytes, writer: asyncio.StreamWriter
    ) -> bool:
        head = b"HTTP/1.1 200 OK\r\nSet-Cookie: sid=1\r\nContent-Length: 2\r\n\r\n"
        return await answer(writer, head + b"ok")

    provider = Provider(set_cookie)
    async with provider as url:
        headers = {"Content-Length": "99", "Transfer-Encoding": "chunked"}
        first = await node.send("POST", url, headers, b"{}", max_body_bytes=9)
        await call(node, "POST", url)

    assert (first.status, first.body, first.attempts) == (200, b"ok", 1)
    sent = [request.lower() for _, request in provider.requests]
    assert sent[0].count(b"content-length:") == 1
    assert b"content-length: 2\r\n" in sent[0]
    assert b"content-length: 0\r\n" in sent[1]
    assert b"accept-encoding: identity\r\n" in sent[0]
    assert b"transfer-encoding" not in sent[0]
    assert b"cookie" not in sent[1]


async def close_second_unanswered(
    index: int, request: bytes, writer: asyncio.StreamWriter
) -> bool:
    """The race of a stale keep-alive connection: the request is read, then the
    connection closes with no answer byte."""
    if index == 1:
        return False
    return await answer(writer, GENUINE)


@pytest.mark.sockets
@pytest.mark.parametrize("method", ["GET", "OPTIONS"])
async def test_stale_connection_is_retried_on_a_fresh_one(
    node: Upstream, method: str
) -> None:
    """C17 A: the second GET meets a closing connection and is sent again."""
    provider = Provider(close_second_unanswered)
    async with provider as url:
        await call(node, method, url)
        second = await call(node, method, url)

    assert (second.status, second.attempts) == (200, 2)
    assert [connection for connection, _ in provider.requests] == [0, 0, 1]


@pytest.mark.sockets
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
async def test_stale_connection_fails_other_methods_without_retry(
    node: Upstream, method: str
) -> None:
    """C17 B: the provider may have acted on the request: 502, sent once."""
    provider = Provider(close_second_unanswered)
    async with provider as url:
        await call(node, method, url)
        error = await call_fails(node, method, url)

    assert error.reason is Reason.UPSTREAM_CONNECTION_RESET
    assert len(provider.requests) == 2


@pytest.mark.sockets
async def test_connection_the_provider_closed_while_idle_is_not_used(
    node: Upstream,
) -> None:
    """A pooled connection the provider closed while idle is replaced, even for
    POST: nothing was written to it."""

    async def close_after_answer(
        index: int, request: bytes, writer: asyncio.StreamWriter
    ) -> bool:
        await answer(writer, GENUINE)
        return False

    provider = Provider(close_after_answer)
    async with provider as url:
        await call(node, "POST", url)
        await asyncio.sleep(0.05)
        second = await call(node, "POST", url)

    assert (second.status, second.attempts) == (200, 1)
    assert [connection for connection, _ in provider.requests] == [0, 1]


@pytest.mark.sockets
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_silent_provider_times_out(node: Upstream, method: str) -> None:
    """C17 C: a provider that never answers is 504 after the read timeout."""

    async def never(index: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(5)
        return False

    provider = Provider(never)
    async with provider as url:
        error = await call_fails(node, method, url)

    assert error.reason is Reason.UPSTREAM_TIMEOUT
    assert len(provider.requests) == 1


@pytest.mark.sockets
@pytest.mark.parametrize("abort", [False, True])
async def test_body_cut_short_is_truncated(node: Upstream, abort: bool) -> None:
    """C17 D: 1200 of 5000 bytes, then a close or a reset: never complete."""

    async def cut(index: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        await answer(
            writer, b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"x" * 1200
        )
        if abort:
            writer.transport.abort()
        return False

    async with Provider(cut) as url:
        error = await call_fails(node, "GET", url)

    assert error.reason is Reason.UPSTREAM_TRUNCATED


@pytest.mark.sockets
@pytest.mark.parametrize(
    ("method", "head"),
    [
        ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 56\r\n\r\n"),
        ("GET", b"HTTP/1.1 204 No Content\r\nContent-Length: 56\r\n\r\n"),
        ("POST", b"HTTP/1.1 204 No Content\r\n\r\n"),
        ("GET", b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\n\r\n'),
    ],
)
@pytest.mark.parametrize("delay", [0.0, 0.05])
async def test_stray_bytes_after_a_bodyless_answer_never_reach_the_next_exchange(
    node: Upstream, method: str, head: bytes, delay: float
) -> None:
    """C06: bytes after a HEAD, 204 or 304 answer, sent at once or later, are
    never read as the answer to the next request on the pool. The bodyless answer
    stands; bytes in the same packet as its head are dropped, later ones are lost
    with the connection, which is closed rather than pooled."""
    stray = b'{"student_id":"WB-2019-000123","aadhaar":"999901234563"}'
    forged = b"HTTP/1.1 200 OK\r\nContent-Length: 56\r\n\r\n" + stray

    async def bodyless_then_stray(
        index: int, request: bytes, writer: asyncio.StreamWriter
    ) -> bool:
        if index > 0:
            return await answer(writer, GENUINE)
        writer.write(head)
        await asyncio.sleep(delay)
        return await answer(writer, forged)

    async with Provider(bodyless_then_stray) as url:
        first = await call(node, method, url)
        await asyncio.sleep(0.1)
        second = await call(node, "GET", url)

    assert (first.body, first.status) == (b"", int(head.split()[1]))
    assert (second.status, second.body) == (200, b"genuine")


@pytest.mark.sockets
async def test_garbage_answer_is_a_protocol_violation(node: Upstream) -> None:
    """An answer that is not HTTP is 502 and quotes none of its bytes."""

    async def garbage(index: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        await answer(writer, b"999901234563 not http\r\n\r\n")
        return False

    async with Provider(garbage) as url:
        error = await call_fails(node, "POST", url)

    assert error.reason is Reason.UPSTREAM_PROTOCOL_VIOLATION
    assert "999901234563" not in repr(error.__cause__)


@pytest.mark.sockets
async def test_refused_connection_is_unavailable_and_names_no_port(
    node: Upstream,
) -> None:
    """Nothing listens: 502 unavailable, with no address in the error chain."""
    async with Provider(genuine) as url:
        pass
    port = url.split(":")[2].split("/")[0]

    error = await call_fails(node, "GET", url)

    assert error.reason is Reason.UPSTREAM_UNAVAILABLE
    assert port not in f"{error} {error.message} {error.__cause__}"


@pytest.mark.sockets
async def test_compressed_answer_is_kept_as_received_until_decoded(
    node: Upstream,
) -> None:
    """C07: the raw gzip bytes come back as sent; identity_body decodes them."""
    packed = gzip.compress(RECORD.encode())

    async def gzipped(index: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n"
        length = b"Content-Length: %d\r\n\r\n" % len(packed)
        return await answer(writer, head + length + packed)

    async with Provider(gzipped) as url:
        received = await call(node, "GET", url)

    assert received.body == packed
    assert identity_body(received, max_body_bytes=1000).body == RECORD.encode()


@pytest.mark.sockets
async def test_oversized_answer_is_refused(node: Upstream) -> None:
    """A body past max_body_bytes is refused while reading."""

    async def large(index: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        chunk = b"4000\r\n" + b"x" * 0x4000 + b"\r\n"
        return await answer(writer, head + chunk * 2 + b"0\r\n\r\n")

    async with Provider(large) as url:
        error = await call_fails(node, "GET", url)

    assert error.log_reason == "upstream_body_too_large"


# -- the lean path of make_client's client -----------------------------------------


@pytest.mark.sockets
async def test_lean_path_sends_the_client_defaults_and_its_own_host(
    node: Upstream,
) -> None:
    """make_client's client skips httpx's request building but sends what it
    would: its default headers, the caller's over them, the URL's Host."""
    provider = Provider(genuine)
    async with provider as url:
        headers = {"Host": "attacker.example", "Accept": "application/json"}
        await node.send("GET", url, headers, b"", max_body_bytes=99)

    sent = provider.requests[0][1].lower()
    port = url.split(":")[2].split("/")[0]
    assert f"host: 127.0.0.1:{port}\r\n".encode() in sent
    assert b"user-agent: shiksha-mediator\r\n" in sent
    assert b"accept: application/json\r\n" in sent
    assert b"accept-encoding: identity\r\n" in sent
    assert b"attacker" not in sent


@pytest.mark.sockets
@pytest.mark.parametrize(
    "value",
    [b"plain", "শোভন".encode(), "café".encode("latin-1")],
    ids=["ascii", "utf-8", "latin-1"],
)
async def test_lean_path_decodes_headers_as_httpx_does(
    node: Upstream, value: bytes
) -> None:
    """Names lower case, values decoded ASCII, else UTF-8, else ISO-8859-1."""

    async def labelled(
        index: int, request: bytes, writer: asyncio.StreamWriter
    ) -> bool:
        head = b"HTTP/1.1 200 OK\r\nX-Label: " + value + b"\r\nContent-Length: 2\r\n"
        return await answer(writer, head + b"Connection: close\r\n\r\nok")

    async with Provider(labelled) as url:
        received = await call(node, "GET", url)

    expected = httpx.Headers([(b"X-Label", value)]).multi_items()
    assert received.headers[0] == expected[0]
    assert [name for name, _ in received.headers] == ["x-label"]
    assert received.body == b"ok"


@pytest.mark.sockets
async def test_lean_path_pools_a_connection_whose_body_was_read(
    node: Upstream,
) -> None:
    """A body read to its end gives the connection back to the pool."""
    provider = Provider(genuine)
    async with provider as url:
        for _ in range(3):
            await call(node, "POST", url, b"{}")

    assert [connection for connection, _ in provider.requests] == [0, 0, 0]
