"""Decisions on a parsed request head and on llhttp's refusals, without sockets."""

from __future__ import annotations

import httptools
import pytest

from gateway.errors import FramingError, Reason
from gateway.httphead import check_head, classify_parser_error


@pytest.mark.parametrize(
    ("version", "coding", "target", "reason"),
    [
        ("0.9", None, b"/r1/x", Reason.MALFORMED_REQUEST),
        ("1.0", b"chunked", b"/r1/x", Reason.AMBIGUOUS_MESSAGE_LENGTH),
        ("1.1", b"gzip, chunked", b"/r1/x", Reason.AMBIGUOUS_MESSAGE_LENGTH),
        ("1.1", None, b"*", Reason.MALFORMED_REQUEST),
        ("1.1", None, b"gw:443", Reason.MALFORMED_REQUEST),
        ("1.1", None, b"http://other:1/r1/x", Reason.INVALID_HOST),
    ],
)
def test_check_head_refuses(
    version: str, coding: bytes | None, target: bytes, reason: Reason
) -> None:
    headers = [(b"transfer-encoding", coding)] if coding else []

    with pytest.raises(FramingError, match=reason.value):
        check_head(version, target, headers, frozenset({"gw:443"}))


@pytest.mark.parametrize("coding", [b"chunked", b"CHUNKED"])
def test_check_head_accepts_plain_chunked(coding: bytes) -> None:
    check_head("1.1", b"/r1/x", [(b"transfer-encoding", coding)], frozenset())


def test_llhttp_refusal_mid_body_is_a_chunk_error() -> None:
    error = httptools.HttpParserError("Invalid character in chunk size")

    assert classify_parser_error(error, b"", in_body=True).reason is (
        Reason.MALFORMED_CHUNKED_BODY
    )
