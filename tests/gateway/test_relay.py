"""The checks and reductions on what the node relays, as plain data."""

from __future__ import annotations

import pytest

from gateway import relay
from gateway.errors import PayloadError, Reason, UpstreamError
from gateway.jsonbody import BOM
from gateway.upstream import UpstreamResponse


def _answer(body: bytes, *headers: tuple[str, str]) -> UpstreamResponse:
    return UpstreamResponse(200, list(headers), body, attempts=1)


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/json", True),
        ("Application/JSON; charset=utf-8", True),
        ("application/problem+json", True),
        ("text/plain", False),
        ("application/jsonp", False),
        (None, False),
        # A list of media types is none of them (RFC 9110 section 8.3.1).
        ("text/plain, application/problem+json", False),
        ("application/json, text/plain", False),
        ("application /json", False),
        ("+json", False),
    ],
)
def test_is_json(content_type: str | None, expected: bool) -> None:
    assert relay.is_json(content_type) is expected


def test_a_body_that_is_not_json_is_unsupported() -> None:
    with pytest.raises(PayloadError, match=Reason.UNSUPPORTED_MEDIA_TYPE.value):
        relay.require_json("text/plain")


def test_one_leading_bom_is_stripped_from_a_request_body() -> None:
    assert relay.strip_bom(BOM + b"{}") == b"{}"
    assert relay.strip_bom(b"{}") == b"{}"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/", ""),
        ("", ""),
        ("students/WB 1", "/students/WB%201"),
        ("/a/b?c#d", "/a/b%3Fc%23d"),
        ("/x/%2F", "/x/%252F"),
    ],
)
def test_an_adapter_path_is_encoded_once_relative_to_the_service(
    path: str, expected: str
) -> None:
    assert relay.encode_path(path) == expected


def test_the_service_root_is_the_service_url_itself() -> None:
    assert relay.service_relative("/") == ""
    assert relay.service_relative("/students") == "/students"


def test_a_json_answer_loses_one_leading_bom() -> None:
    answer = _answer(BOM + b"{}", ("content-type", "application/json"))

    assert relay.without_bom(answer) == b"{}"


@pytest.mark.parametrize(
    "answer",
    [
        _answer(b"{}", ("content-type", "application/json")),
        _answer(BOM + b"text", ("content-type", "text/plain")),
    ],
)
def test_an_answer_without_a_json_bom_passes_untouched(
    answer: UpstreamResponse,
) -> None:
    assert relay.without_bom(answer) is None


def test_a_second_bom_makes_the_answer_invalid() -> None:
    answer = _answer(BOM + BOM + b"{}", ("content-type", "application/json"))

    with pytest.raises(UpstreamError) as info:
        relay.without_bom(answer)

    assert info.value.reason is Reason.UPSTREAM_RESPONSE_INVALID


def test_the_first_content_type_is_the_answers() -> None:
    answer = _answer(b"", ("content-type", "a/b"), ("content-type", "c/d"))

    assert relay.content_type(answer) == "a/b"
    assert relay.content_type(_answer(b"")) is None


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"error": "not_found", "student": "WB-1"}, {"error": "not_found"}),
        ({"error": "x" * 80}, {"error": "x" * 64}),
        ({"error": 404}, {"error": "provider_error"}),
        (["not", "an", "object"], {"error": "provider_error"}),
    ],
)
def test_an_error_body_is_reduced_to_its_code(
    document: object, expected: dict[str, str]
) -> None:
    assert relay.error_only(document) == expected


def test_only_allow_listed_header_fields_reach_the_client() -> None:
    answer = _answer(
        b"",
        ("content-type", "application/json"),
        ("set-cookie", "session=1"),
        ("etag", '"v1"'),
    )

    assert relay.forwarded_headers(answer) == {
        "content-type": "application/json",
        "etag": '"v1"',
    }


def test_a_header_value_outside_visible_ascii_is_refused() -> None:
    answer = _answer(b"", ("content-language", "bn\u00e9"))

    with pytest.raises(UpstreamError) as info:
        relay.forwarded_headers(answer)

    assert info.value.log_reason == "upstream_header_not_ascii"
