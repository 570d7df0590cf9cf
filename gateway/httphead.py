"""The request head as llhttp parses it: the rules it leaves open, its refusals named.

The node's HTTP server (:mod:`gateway.server`) feeds each connection to llhttp
through uvicorn's httptools protocol. These functions decide on what llhttp read,
on plain bytes and strings, so that the server can answer every refusal with the
mediator's own reason:

- :func:`check_head` applies what llhttp accepts but the mediator does not: an
  HTTP version other than 1.0 and 1.1, a transfer coding other than ``chunked``
  alone on HTTP/1.1 (RFC 9112 section 6.1), a request target that is neither in
  origin form nor an absolute form naming this node;
- :func:`classify_parser_error` turns an llhttp refusal into the reason the
  client and the message log get;
- :func:`request_line` reads the method and target of a head, broken or not, for
  the record of its refusal.

The app's own framing rules, on a head that passed, are in :mod:`gateway.framing`.
"""

from __future__ import annotations

import re

import httptools

from gateway.errors import FramingError, Reason

__all__ = ["check_head", "classify_parser_error", "request_line"]

_VERSIONS = frozenset({"1.0", "1.1"})
# A length or coding header with whitespace before the colon (RFC 9112 section 5.1).
_SPACED_FRAMING_NAME = re.compile(
    rb"^(?:transfer-encoding|content-length)[ \t]+:", re.IGNORECASE | re.MULTILINE
)
_LISTED_LENGTH = re.compile(rb"^content-length:[^\r\n]*,", re.IGNORECASE | re.MULTILINE)


def classify_parser_error(
    error: httptools.HttpParserError, head: bytes, *, in_body: bool
) -> FramingError:
    """The mediator's reason for an llhttp refusal; raises nothing.

    ``head`` is what was received of the request head, used to tell a listed
    Content-Length (``40, 0``) or a spaced header name from other syntax errors,
    which llhttp reports alike.
    """
    text = str(error)
    # llhttp refuses some codings (``chunked\t``) only after the head callback.
    if "Transfer-Encoding" in text:
        return FramingError(Reason.AMBIGUOUS_MESSAGE_LENGTH)
    if in_body:
        return FramingError(Reason.MALFORMED_CHUNKED_BODY)
    checks: tuple[tuple[bool, Reason], ...] = (
        (isinstance(error, httptools.HttpParserInvalidURLError), Reason.INVALID_PATH),
        (
            isinstance(error, httptools.HttpParserInvalidMethodError),
            Reason.MALFORMED_REQUEST,
        ),
        (
            "Duplicate Content-Length" in text or bool(_LISTED_LENGTH.search(head)),
            Reason.DUPLICATE_CONTENT_LENGTH,
        ),
        ("Content-Length" in text, Reason.AMBIGUOUS_MESSAGE_LENGTH),
        (bool(_SPACED_FRAMING_NAME.search(head)), Reason.AMBIGUOUS_MESSAGE_LENGTH),
        ("header" in text.lower(), Reason.INVALID_HEADER),
    )
    for matched, reason in checks:
        if matched:
            return FramingError(reason)
    return FramingError(Reason.MALFORMED_REQUEST)


def check_head(
    version: str,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
    allowed_hosts: frozenset[str],
) -> None:
    """Rules on a parsed head that llhttp leaves open; raise FramingError.

    HTTP/1.0 or 1.1 only (llhttp also reads 0.9 and 2.0 request lines); a
    Transfer-Encoding only on HTTP/1.1, once, exactly ``chunked`` (llhttp accepts
    ``gzip, chunked``); an origin-form target, or an absolute-form one naming an
    allowed authority (never a forward proxy).
    """
    if version not in _VERSIONS:
        raise FramingError(Reason.MALFORMED_REQUEST)
    codings = [value for name, value in headers if name == b"transfer-encoding"]
    if codings and version != "1.1":
        raise FramingError(Reason.AMBIGUOUS_MESSAGE_LENGTH)
    if codings and (len(codings) > 1 or codings[0].strip().lower() != b"chunked"):
        raise FramingError(Reason.AMBIGUOUS_MESSAGE_LENGTH)
    if target.startswith(b"/"):
        return
    if b"://" not in target:
        raise FramingError(Reason.MALFORMED_REQUEST)
    try:
        url = httptools.parse_url(target)
    except httptools.HttpParserInvalidURLError as exc:
        raise FramingError(Reason.INVALID_PATH) from exc
    authority = (url.host or b"").decode("latin-1").lower()
    if url.port is not None:
        authority = f"{authority}:{url.port}"
    if url.userinfo or authority not in allowed_hosts:
        raise FramingError(Reason.INVALID_HOST)


def request_line(head: bytes, limit: int) -> tuple[str, bytes]:
    """The method and target of a (possibly broken) request head; raises nothing."""
    line = head.split(b"\n", 1)[0].rstrip(b"\r")
    parts = line.split(b" ")
    method = parts[0] if parts[0].isalpha() else b""
    target = parts[1] if len(parts) > 1 else b""
    return method.decode("ascii")[:16], target[:limit]
