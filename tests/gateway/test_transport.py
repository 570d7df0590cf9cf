"""The node's own httpx transport to providers, against scripted loopback servers."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator

import aiohttp
import httpx
import pytest

from gateway.settings import UpstreamSettings
from gateway.transport import (
    FRESH_CONNECTION,
    STRAY_BYTES,
    MalformedResponseError,
    ProviderTransport,
)
from tests.gateway.test_upstream import GENUINE, Provider, Reply, answer

pytestmark = [pytest.mark.anyio, pytest.mark.sockets]

SETTINGS = UpstreamSettings(connect_timeout_s=1.0, read_timeout_s=0.3, pool_size=1)
TIMEOUTS = aiohttp.ClientTimeout(sock_connect=1.0, sock_read=0.3)
NO_CONTENT = b"HTTP/1.1 204 No Content\r\n\r\n"
FORGED = b'HTTP/1.1 200 OK\r\nContent-Length: 21\r\n\r\n{"aadhaar":"9999012"}'


@pytest.fixture
async def transport() -> AsyncIterator[ProviderTransport]:
    opened = ProviderTransport(SETTINGS)
    yield opened
    await opened.aclose()


@pytest.fixture
def client(transport: ProviderTransport) -> httpx.AsyncClient:
    """An httpx client over the transport, as make_client builds one."""
    return httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(0.3))


async def genuine(index: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
    return await answer(writer, GENUINE)


def replying(*replies: bytes) -> Provider:
    """A provider that answers its n-th request with ``replies[n]``."""

    async def reply(index: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        return await answer(writer, replies[index])

    return Provider(reply)


def header_names(request: bytes) -> list[str]:
    head = request.split(b"\r\n\r\n")[0].decode()
    return sorted(line.split(":")[0].lower() for line in head.split("\r\n")[1:])


def connections(provider: Provider) -> list[int]:
    return [connection for connection, _ in provider.requests]


# -- what is sent --------------------------------------------------------------------


async def test_a_request_carries_no_header_the_caller_did_not_give(
    transport: ProviderTransport,
) -> None:
    """No Accept, Accept-Encoding or User-Agent of aiohttp's own; Host from the URL."""
    provider = Provider(genuine)
    async with provider as url:
        answered = await transport.open(
            "GET",
            url,
            [("X-Road-Client", "WB/GOV/WCD/kanyashree")],
            b"",
            timeouts=TIMEOUTS,
        )
        await answered.aclose()

    assert header_names(provider.requests[0][1]) == ["host", "x-road-client"]


async def test_a_redirect_is_returned_not_followed(client: httpx.AsyncClient) -> None:
    provider = replying(
        b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/admin\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    async with provider as url:
        response = await client.get(url)

    assert response.status_code == 302
    assert len(provider.requests) == 1


async def test_a_compressed_body_is_handed_over_as_received(
    transport: ProviderTransport,
) -> None:
    """C07: decoding, and its limits, are the node's, not the library's."""
    packed = gzip.compress(b'{"students": []}')
    provider = replying(
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n"
        + b"Content-Length: %d\r\n\r\n" % len(packed)
        + packed
    )
    async with provider as url:
        answered = await transport.open("GET", url, [], b"", timeouts=TIMEOUTS)
        body = b"".join([chunk async for chunk in answered.chunks()])
        await answered.aclose()

    assert ("content-encoding", "gzip") in answered.headers()
    assert body == packed


# -- connections ---------------------------------------------------------------------


async def test_a_connection_whose_body_was_read_is_pooled(
    client: httpx.AsyncClient,
) -> None:
    provider = replying(GENUINE, GENUINE)
    async with provider as url:
        for _ in range(2):
            (await client.get(url)).raise_for_status()

    assert connections(provider) == [0, 0]


@pytest.mark.parametrize(
    ("method", "head"),
    [
        ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n"),
        ("GET", NO_CONTENT),
        ("GET", b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\n\r\n'),
    ],
)
async def test_a_connection_that_carried_a_bodyless_answer_is_not_pooled(
    client: httpx.AsyncClient, method: str, head: bytes
) -> None:
    """C06: bytes the provider might write after it can never answer another."""
    provider = replying(head, GENUINE)
    async with provider as url:
        first = await client.request(method, url)
        second = await client.get(url)

    assert (first.content, second.content) == (b"", b"genuine")
    assert connections(provider) == [0, 1]


@pytest.mark.parametrize(
    "stray", [FORGED, b"999901234563 is not http\r\n\r\n"], ids=["answer", "garbage"]
)
async def test_bytes_after_a_bodyless_answer_are_dropped_and_reported(
    client: httpx.AsyncClient, stray: bytes
) -> None:
    """They arrive with the head, but are never parsed: the genuine 204 stands."""
    provider = replying(NO_CONTENT + stray, GENUINE)
    async with provider as url:
        first = await client.get(url)
        second = await client.get(url)

    assert (first.status_code, first.extensions.get(STRAY_BYTES)) == (204, True)
    assert (second.status_code, second.content) == (200, b"genuine")
    assert STRAY_BYTES not in second.extensions


async def test_a_second_answer_to_one_request_is_dropped_and_reported(
    client: httpx.AsyncClient,
) -> None:
    provider = replying(GENUINE + FORGED, GENUINE)
    async with provider as url:
        first = await client.get(url)
        second = await client.get(url)

    assert (first.content, first.extensions.get(STRAY_BYTES)) == (b"genuine", True)
    assert second.content == b"genuine"
    assert connections(provider) == [0, 1]


async def test_an_interim_answer_is_followed_by_the_final_one(
    client: httpx.AsyncClient,
) -> None:
    provider = replying(b"HTTP/1.1 100 Continue\r\n\r\n" + GENUINE)
    async with provider as url:
        response = await client.post(url, content=b"{}")

    assert (response.status_code, response.content) == (200, b"genuine")
    assert STRAY_BYTES not in response.extensions


async def test_a_request_marked_fresh_gets_a_connection_of_its_own(
    client: httpx.AsyncClient,
) -> None:
    provider = replying(GENUINE, GENUINE, GENUINE)
    async with provider as url:
        await client.get(url)
        await client.get(url, extensions={FRESH_CONNECTION: True})
        await client.get(url)

    assert connections(provider) == [0, 1, 0]


# -- failures ------------------------------------------------------------------------


async def close_unanswered(
    index: int, request: bytes, writer: asyncio.StreamWriter
) -> bool:
    return False


async def silent(index: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
    await asyncio.sleep(5)
    return False


async def garbage(index: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
    return await answer(writer, b"999901234563 is not http\r\n\r\n")


@pytest.mark.parametrize(
    ("reply", "error", "text"),
    [
        (close_unanswered, httpx.RemoteProtocolError, "closed unanswered"),
        (silent, httpx.ReadTimeout, "timed out waiting for the provider"),
        (garbage, MalformedResponseError, "the answer is not HTTP"),
    ],
)
async def test_a_failure_before_the_answer_has_a_fixed_text(
    client: httpx.AsyncClient, reply: Reply, error: type[Exception], text: str
) -> None:
    """No address, port or byte of the answer reaches the error."""
    async with Provider(reply) as url:
        with pytest.raises(error) as caught:
            await client.get(url)

    assert str(caught.value) == text
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


async def test_a_refused_connection_names_no_address(
    client: httpx.AsyncClient,
) -> None:
    async with Provider(genuine) as url:
        pass

    with pytest.raises(httpx.ConnectError) as caught:
        await client.get(url)

    assert str(caught.value) == "could not connect"
    assert caught.value.__suppress_context__


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/students", "http://"])
async def test_a_url_that_is_not_http_is_unsupported(
    transport: ProviderTransport, url: str
) -> None:
    with pytest.raises(httpx.UnsupportedProtocol):
        await transport.open("GET", url, [], b"", timeouts=TIMEOUTS)


async def stalled_body(
    index: int, request: bytes, writer: asyncio.StreamWriter
) -> bool:
    await answer(
        writer, b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"x" * 100
    )
    await asyncio.sleep(5)
    return False


async def cut_body(index: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
    await answer(
        writer, b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"x" * 100
    )
    return False


@pytest.mark.parametrize(
    ("reply", "error", "text"),
    [
        (cut_body, httpx.ReadError, "the provider's body ended early"),
        (stalled_body, httpx.ReadTimeout, "timed out reading the provider's body"),
    ],
)
async def test_a_failure_in_the_body_is_told_apart_from_one_before_it(
    client: httpx.AsyncClient, reply: Reply, error: type[Exception], text: str
) -> None:
    async with Provider(reply) as url, client.stream("GET", url) as response:
        assert response.status_code == 200
        with pytest.raises(error) as caught:
            await response.aread()

    assert str(caught.value) == text
