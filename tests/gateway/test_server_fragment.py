"""A '#' in the request target, over raw sockets: split, absolute, encoded, HTTP/1.0."""

from __future__ import annotations

import asyncio

import pytest

from tests.gateway.test_server import (
    EXPORT,
    STUDENTS_ID,
    Served,
    _read_all,
    anyio_backend,  # noqa: F401 - the module's one event loop
    assert_refused,
    node_server,  # noqa: F401 - the node behind the real server, for the module
    parse_reply,
)

pytestmark = [pytest.mark.anyio, pytest.mark.sockets]


@pytest.fixture
def served(node_server: Served) -> Served:  # noqa: F811 - the imported fixture
    """The module's server, with a fresh view of what reached the provider."""
    node_server.upstream.clear()
    return node_server


async def _send_in_parts(served: Served, parts: list[bytes]) -> bytes:
    """Write each part as its own TCP segment, then read until the node closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    try:
        for part in parts:
            writer.write(part)
            await writer.drain()
            # Let the node read this part on its own before the next is sent.
            await asyncio.sleep(0.05)
        return await _read_all(reader)
    finally:
        writer.close()


@pytest.mark.parametrize(
    "cut",
    [len(b"GET " + EXPORT), len(b"GET " + EXPORT) + 1, len(b"GET /r1/")],
    ids=["before-hash", "after-hash", "early"],
)
async def test_a_fragment_split_across_segments_is_refused(
    served: Served, cut: int
) -> None:
    data = served.head(b"GET", EXPORT + b"#frag") + b"\r\n"
    before = len(await served.records())

    reply = parse_reply(await _send_in_parts(served, [data[:cut], data[cut:]]))

    assert reply.status == 400
    assert reply.headers["x-road-error"].endswith(".invalid_path")
    records = (await served.records())[before:]
    assert [r["reason"] for r in records] == ["fragment_in_target"]
    assert served.upstream == []


async def test_a_fragment_in_an_absolute_form_target_is_refused(
    served: Served,
) -> None:
    target = b"http://" + served.host + EXPORT + b"#frag"
    data = served.head(b"GET", target) + b"\r\n"

    await assert_refused(served, data, 400, "invalid_path", "fragment_in_target")


@pytest.mark.parametrize(
    "target",
    [EXPORT + b"?q=a#b", EXPORT + b"?#", EXPORT + b"#", b"/r1/" + STUDENTS_ID + b"#"],
    ids=["in-query", "empty-query", "bare", "after-service"],
)
async def test_a_fragment_after_a_query_or_alone_is_refused(
    served: Served, target: bytes
) -> None:
    data = served.head(b"GET", target) + b"\r\n"

    await assert_refused(served, data, 400, "invalid_path", "fragment_in_target")


async def test_a_fragment_on_http10_is_refused(served: Served) -> None:
    data = b"GET " + EXPORT + b"#frag HTTP/1.0\r\nHost: " + served.host + b"\r\n\r\n"

    await assert_refused(served, data, 400, "invalid_path", "fragment_in_target")


@pytest.mark.parametrize(
    "target",
    [EXPORT + b"%23frag", EXPORT + b"?q=%23", b"/r1/" + STUDENTS_ID + b"/%23/export"],
    ids=["path", "query", "segment"],
)
async def test_an_encoded_hash_is_not_taken_for_a_fragment(
    served: Served, target: bytes
) -> None:
    data = served.head(b"GET", target) + b"Connection: close\r\n\r\n"
    before = len(await served.records())

    reply = parse_reply(await served.send(data))

    records = (await served.records())[before:]
    assert [r["reason"] for r in records] != ["fragment_in_target"]
    assert len(records) == 1
    assert reply.status != 200
