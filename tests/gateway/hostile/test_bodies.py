"""C20, C21, C23, C24 end to end: bodies that are not strict UTF-8 JSON are refused
with a typed 4xx, never 500, and never forwarded; one BOM is stripped consistently."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import orjson
import pytest

from gateway.signing import check_content_digest, sign_response
from gateway.upstream import UpstreamResponse
from tests.gateway.conftest import Harness
from tests.gateway.hostile.support import (
    SABOOJSATHI,
    SCHOOLS,
    Spy,
    consented_applicant,
    verify,
)

pytestmark = pytest.mark.anyio

STUDENT = b'"student_id":"WB-2019-000123"'


def _digest(body: bytes) -> str:
    return f"sha-256=:{base64.b64encode(hashlib.sha256(body).digest()).decode()}:"


@pytest.mark.parametrize(
    ("body", "content_type", "status", "reason"),
    [
        # C20: not UTF-8, never replaced with U+FFFD.
        (b'{"name":"\xe0\xa6\xb8\xe0\xa7","class":"V"}', None, 400, "invalid_encoding"),
        (b'{"name":"Sumitra Ray\xe9"}', None, 400, "invalid_encoding"),
        (b'{"name":"\xc0\xaf"}', None, 400, "invalid_encoding"),
        (b'{"name":"\\ud800"}', None, 400, "invalid_encoding"),
        (
            '{"name":"x"}'.encode("utf-16-le"),
            "application/json; charset=utf-16",
            415,
            "unsupported_media_type",
        ),
        # C21: a second BOM, or one after whitespace.
        (b"\xef\xbb\xbf\xef\xbb\xbf{}", None, 400, "invalid_json"),
        (b" \xef\xbb\xbf{}", None, 400, "invalid_json"),
        # C23: deep nesting, far beyond the recursion limit.
        (
            b'{"filter":' + b'{"and":[' * 5000 + b"{}" + b"]}" * 5000 + b"}",
            None,
            400,
            "json_too_deep",
        ),
        (b"[" * 100000 + b"]" * 100000, None, 400, "json_too_deep"),
        # C24: huge integers, NaN and Infinity, non-finite floats.
        (
            b"{" + STUDENT + b',"meal_days":' + b"9" * 5000 + b"}",
            None,
            400,
            "invalid_number",
        ),
        (b"{" + STUDENT + b',"meal_days":NaN}', None, 400, "invalid_json"),
        (b"{" + STUDENT + b',"meal_days":Infinity}', None, 400, "invalid_json"),
        (b"{" + STUDENT + b',"meal_days":-Infinity}', None, 400, "invalid_json"),
        (b"{" + STUDENT + b',"attendance_pct":1e400}', None, 400, "invalid_number"),
        # Identifiers sent as numbers are never coerced to strings.
        (
            b'{"applicant":{"registry_uid":999901234563,"dob":"05/03/2012"}}',
            None,
            422,
            "schema_violation",
        ),
    ],
)
async def test_bad_bodies_are_typed_client_errors_and_never_forwarded(
    harness: Harness, body: bytes, content_type: str | None, status: int, reason: str
) -> None:
    headers = {"content_type": content_type} if content_type else {}

    response = await verify(harness, body, **headers)

    assert response.status_code == status
    assert response.headers["x-road-error"] == f"Client.{reason}"
    assert set(response.json()) == {"type", "message", "detail"}
    (record,) = await harness.exchanges()
    assert record["upstream_called"] is False
    assert record["request_body_sha256"] == hashlib.sha256(body).hexdigest()


async def test_the_node_keeps_serving_after_a_deeply_nested_body(
    harness: Harness,
) -> None:
    body = orjson.dumps(await consented_applicant(harness))
    await verify(harness, b"[" * 100000 + b"]" * 100000)

    response = await verify(harness, body)

    assert response.status_code == 200


async def test_one_bom_is_stripped_after_the_client_digest_is_checked(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = Spy(harness, monkeypatch)
    body = b"\xef\xbb\xbf" + orjson.dumps(await consented_applicant(harness))

    response = await verify(harness, body, content_digest=_digest(body))

    assert response.status_code == 200
    ((_method, _url, headers, forwarded),) = spy.calls
    assert not forwarded.startswith(b"\xef\xbb\xbf")
    assert check_content_digest(headers["content-digest"], forwarded)
    (record,) = await harness.exchanges()
    assert record["client_digest_verified"] is True
    assert record["request_body_sha256"] == hashlib.sha256(body).hexdigest()
    assert record["forwarded_body_sha256"] == hashlib.sha256(forwarded).hexdigest()


async def test_a_client_digest_that_does_not_match_is_refused(
    harness: Harness,
) -> None:
    body = orjson.dumps(await consented_applicant(harness))

    response = await verify(harness, body, content_digest=_digest(body + b" "))

    assert response.status_code == 400
    assert response.headers["x-road-error"] == "Client.invalid_content_digest"
    (record,) = await harness.exchanges()
    assert record["upstream_called"] is False


def _answering(harness: Harness, monkeypatch: pytest.MonkeyPatch, body: bytes) -> None:
    """The provider answers ``body`` as JSON, signed with its registered key."""
    key = harness.demo.registry_key
    assert key is not None
    json_type = {"content-type": "application/json"}
    signed = sign_response(key, status=200, headers=json_type, body=body)

    async def answer(*_args: Any, **_kwargs: Any) -> UpstreamResponse:
        return UpstreamResponse(200, [*json_type.items(), *signed.items()], body, 1)

    monkeypatch.setattr(harness.node.upstream, "send", answer)


async def _roster(harness: Harness) -> Any:
    # SaboojSathi reads schools with no adapter and no purpose: passed through.
    return await harness.client(SABOOJSATHI).call(
        "GET", SCHOOLS, "/", query={"district": "Nadia"}
    )


async def test_one_bom_is_stripped_from_a_passed_through_answer_too(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = b'[{"udise_code":"19110900503"}]'
    _answering(harness, monkeypatch, b"\xef\xbb\xbf" + document)

    answer = await _roster(harness)

    assert answer.status == 200
    assert answer.signature_ok
    assert answer.body == document
    (record,) = await harness.exchanges()
    assert record["upstream_body_sha256"] != record["response_body_sha256"]


async def test_a_second_bom_on_a_passed_through_answer_is_502(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    _answering(harness, monkeypatch, b"\xef\xbb\xbf\xef\xbb\xbf[]")

    answer = await _roster(harness)

    assert answer.status == 502
    assert answer.error_type == "Server.Provider.upstream_response_invalid"
