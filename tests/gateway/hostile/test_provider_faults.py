"""C06, C07, C17 end to end over real sockets: a scripted provider on 127.0.0.1
that sends bodies after bodyless answers, compresses, stalls, resets or answers
garbage. Every case is a typed 502/504 or a clean answer, never a 500, and no
error names the provider's address."""

from __future__ import annotations

import asyncio
import gzip

import orjson
import pytest

from gateway.verifying import verify_response
from tests.gateway.conftest import Harness
from tests.gateway.hostile.support import (
    SCHOOLS,
    consented_applicant,
    outcome,
    provider,
    route_to,
    send,
    signed_answer,
    verify,
)

pytestmark = pytest.mark.anyio

SCHOOL = b'{"udise_code":"19110900503","name":"Sample School"}'
STRAY = b'{"student_id":"WB-2019-000123","aadhaar":"999901234563"}'


def _no_address(body: bytes, port: int) -> None:
    text = body.decode()
    assert "127.0.0.1" not in text
    assert str(port) not in text


async def test_stray_bytes_after_a_head_answer_never_reach_the_next_client(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = harness.demo.registry_key
    assert key is not None

    async def script(request: bytes, writer: asyncio.StreamWriter) -> None:
        if request.startswith(b"HEAD"):
            head = signed_answer(key, 200, b"", headers={"content-length": "56"})
            writer.write(head)
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(STRAY)
        else:
            writer.write(signed_answer(key, 200, SCHOOL))
        await writer.drain()

    async with provider(script) as fake:
        route_to(harness, monkeypatch, fake.port)
        head = await send(harness, "HEAD", f"/{SCHOOLS}/19110900503")
        get = await send(harness, "GET", f"/{SCHOOLS}/19110900503")

    assert head.status_code == 200
    assert head.body == b""
    assert get.status_code == 200
    assert b"999901234563" not in get.body
    assert fake.connections == 2
    assert (await outcome(harness, head))["status"] == 200
    assert (await outcome(harness, get))["status"] == 200
    assert "999901234563" not in orjson.dumps(await harness.records()).decode()


@pytest.mark.parametrize("split", [0, 2], ids=["whole-head", "head-end-apart"])
@pytest.mark.parametrize(
    ("method", "status"), [("HEAD", 200), ("GET", 204), ("GET", 304)]
)
async def test_stray_bytes_in_the_same_segment_are_dropped_and_noted(
    harness: Harness,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    status: int,
    split: int,
) -> None:
    """The bodyless answer is served; its connection is discarded, never reused.

    The stray bytes arrive in the segment that ends the head: the whole head, or
    only the last ``split`` bytes of its blank line after the rest.
    """
    key = harness.demo.registry_key
    assert key is not None
    answered: list[int] = []

    async def script(_request: bytes, writer: asyncio.StreamWriter) -> None:
        answered.append(1)
        if len(answered) > 1:
            writer.write(signed_answer(key, 200, SCHOOL))
            await writer.drain()
            return
        length = {"content-length": str(len(STRAY))}
        head = signed_answer(key, status, b"", headers=length)
        if split:
            writer.write(head[:-split])
            await writer.drain()
            await asyncio.sleep(0.05)
            head = head[-split:]
        writer.write(head + STRAY)
        await writer.drain()

    async with provider(script) as fake:
        route_to(harness, monkeypatch, fake.port)
        first = await send(harness, method, f"/{SCHOOLS}/19110900503")
        second = await send(harness, "GET", f"/{SCHOOLS}/19110900503")

    assert first.status_code == status
    assert first.body == b""
    assert "transfer-encoding" not in first.headers
    assert second.status_code == 200
    assert second.body == SCHOOL
    assert fake.connections == 2
    noted = await outcome(harness, first)
    assert noted["reason"] == "upstream_protocol_violation"
    assert noted["status"] == status
    assert "999901234563" not in orjson.dumps(await harness.records()).decode()


@pytest.mark.parametrize("status", [204, 304])
async def test_bodyless_statuses_reach_the_client_without_a_body(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, status: int
) -> None:
    key = harness.demo.registry_key
    assert key is not None

    async def script(_request: bytes, writer: asyncio.StreamWriter) -> None:
        head = signed_answer(key, status, b"", headers={"content-length": "24"})
        writer.write(head)
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"x" * 24)

    async with provider(script) as fake:
        route_to(harness, monkeypatch, fake.port)
        response = await send(harness, "GET", f"/{SCHOOLS}/19110900503")

    assert response.status_code == status
    assert response.body == b""
    assert "transfer-encoding" not in response.headers


async def test_compressed_answer_is_decoded_released_and_signed_as_sent(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = harness.demo.registry_key
    assert key is not None
    body = orjson.dumps(await consented_applicant(harness))

    async def script(request: bytes, writer: asyncio.StreamWriter) -> None:
        head, _, sent = request.partition(b"\r\n\r\n")
        path = head.split(b" ")[1].decode()
        genuine = await harness.registry_http.post(
            f"http://registry{path}",
            content=sent,
            headers={"content-type": "application/json"},
        )
        document = {**genuine.json(), "aadhaar": "999901234563"}
        packed = gzip.compress(orjson.dumps(document))
        writer.write(
            signed_answer(key, 200, packed, headers={"content-encoding": "gzip"})
        )
        await writer.drain()

    async with provider(script) as fake:
        route_to(harness, monkeypatch, fake.port)
        response = await verify(harness, body, accept_encoding="gzip")

    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    assert int(response.headers["content-length"]) == len(response.body)
    assert b"999901234563" not in response.body
    assert "aadhaar" not in response.json()
    verify_response(
        status=200,
        headers=dict(response.headers.items()),
        body=response.body,
        keys=harness.node.keyring.registered_keys(),
        max_age_s=300,
    )


async def test_post_closed_without_an_answer_is_502_and_sent_once(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def script(_request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.close()

    body = orjson.dumps(await consented_applicant(harness))
    async with provider(script) as fake:
        route_to(harness, monkeypatch, fake.port)
        response = await verify(harness, body)

    assert response.status_code == 502
    assert (
        response.headers["x-road-error"] == "Server.Provider.upstream_connection_reset"
    )
    assert len(fake.requests) == 1
    _no_address(response.body, fake.port)
    record = await outcome(harness, response)
    assert record["decision"] == "upstream_error"
    assert record["upstream_called"] is True


async def test_get_closed_without_an_answer_is_retried_once_on_a_fresh_connection(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = harness.demo.registry_key
    assert key is not None
    seen: list[int] = []

    async def script(_request: bytes, writer: asyncio.StreamWriter) -> None:
        seen.append(1)
        if len(seen) == 1:
            writer.close()
            return
        writer.write(signed_answer(key, 200, SCHOOL))
        await writer.drain()

    async with provider(script) as fake:
        route_to(harness, monkeypatch, fake.port)
        response = await send(harness, "GET", f"/{SCHOOLS}/19110900503")

    assert response.status_code == 200
    record = await outcome(harness, response)
    assert record["upstream_attempts"] == 2


async def test_silent_provider_is_504_without_retry(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def script(_request: bytes, _writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    async with provider(script) as fake:
        route_to(harness, monkeypatch, fake.port, read_timeout_s=0.3)
        response = await send(harness, "GET", f"/{SCHOOLS}/19110900503")

    assert response.status_code == 504
    assert response.headers["x-road-error"] == "Server.Provider.upstream_timeout"
    assert len(fake.requests) == 1
    _no_address(response.body, fake.port)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"x" * 1200,
            "upstream_truncated",
        ),
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "upstream_protocol_violation"),
    ],
)
async def test_truncated_or_garbage_answers_are_502_never_passed_on(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, answer: bytes, reason: str
) -> None:
    async def script(_request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(answer)
        await writer.drain()
        writer.close()

    async with provider(script) as fake:
        route_to(harness, monkeypatch, fake.port)
        response = await send(harness, "GET", f"/{SCHOOLS}/19110900503")

    assert response.status_code == 502
    assert response.headers["x-road-error"] == f"Server.Provider.{reason}"
    assert b"x" * 100 not in response.body
    _no_address(response.body, fake.port)
    record = await outcome(harness, response)
    assert record["reason"] == reason


async def test_head_to_a_signing_provider_is_served_not_a_digest_mismatch(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HEAD is allowed wherever GET is (access.yaml). A provider that signs its
    answers puts in a HEAD answer the Content-Digest of the content a GET would
    carry (RFC 9530 section 2, as the registry stub does); checking that digest
    against the empty HEAD body would answer 502 digest_mismatch, blaming
    the provider for a correct answer."""
    key = harness.demo.registry_key
    assert key is not None

    async def script(request: bytes, writer: asyncio.StreamWriter) -> None:
        if request.startswith(b"HEAD"):
            # Headers of the GET answer, no content: signed over what GET sends.
            writer.write(
                signed_answer(
                    key,
                    200,
                    b"",
                    headers={"content-length": str(len(SCHOOL))},
                    signed_body=SCHOOL,
                )
            )
        else:
            writer.write(signed_answer(key, 200, SCHOOL))
        await writer.drain()

    async with provider(script) as fake:
        route_to(harness, monkeypatch, fake.port)
        get = await send(harness, "GET", f"/{SCHOOLS}/19110900503")
        head = await send(harness, "HEAD", f"/{SCHOOLS}/19110900503")

    assert get.status_code == 200
    assert head.status_code == 200, head.headers.get("x-road-error")
    assert head.body == b""
    record = await outcome(harness, head)
    assert record["decision"] == "forwarded"


async def test_every_attempt_is_counted_when_the_retry_fails_too(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """C17: "Every attempt is in the message log." A GET whose connection is
    closed unanswered is retried once on a fresh connection; when the retry is
    closed too, the record counts both requests the provider received."""

    async def script(_request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async with provider(script) as fake:
        route_to(harness, monkeypatch, fake.port)
        response = await send(harness, "GET", f"/{SCHOOLS}/19110900503")

    assert response.status_code == 502
    assert len(fake.requests) == 2
    record = await outcome(harness, response)
    assert record["upstream_attempts"] == len(fake.requests)


async def test_head_answer_never_claims_content_length_zero(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RFC 9110 section 8.6: a Content-Length in a HEAD answer must equal the
    length a GET would carry, or be left out: never the 0 of the empty body the
    node sends while the provider said 51."""
    key = harness.demo.registry_key
    assert key is not None

    async def script(_request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(
            signed_answer(key, 200, b"", headers={"content-length": str(len(SCHOOL))})
        )
        await writer.drain()

    async with provider(script) as fake:
        route_to(harness, monkeypatch, fake.port)
        head = await send(harness, "HEAD", f"/{SCHOOLS}/19110900503")

    assert head.status_code == 200
    assert head.body == b""
    assert head.headers.get("content-length") in (None, str(len(SCHOOL)))
