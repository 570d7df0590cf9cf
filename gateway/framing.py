"""Step 1 of an exchange: frame the request before anything reads it.

The HTTP server (uvicorn with httptools) has already refused what it cannot parse.
This module applies the mediator's own rules on top: one Host from the allow-list,
header values without control characters, no body on methods that have none, and a
body read against the size cap without ever holding more than the cap in memory.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

from gateway.errors import FramingError, Reason
from gateway.signing import check_content_digest

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]

_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
METHODS = frozenset(_METHOD_ORDER)
#: RFC 9110 sections 9.3.1, 9.3.2 and 9.3.5: content on these has no defined meaning.
BODYLESS_METHODS = frozenset({"GET", "HEAD", "DELETE"})
# RFC 9110 section 5.5: field values are visible ASCII, obs-text, space and tab.
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_REQUEST_ID = re.compile(r"[A-Za-z0-9-]{1,64}", re.ASCII)


class PartialBodyError(FramingError):
    """A body that was not read whole, with how many of its bytes arrived first.

    The record keeps the count (C19): an aborted, slow, malformed or oversized
    body is logged with what the client actually sent.
    """

    def __init__(
        self, reason: Reason, bytes_read: int, log_reason: str | None = None
    ) -> None:
        super().__init__(reason, log_reason=log_reason)
        self.bytes_read = bytes_read


class BodyTooLargeError(PartialBodyError):
    """``body_too_large``, with how many body bytes were read before it (C19)."""

    def __init__(self, bytes_read: int, log_reason: str | None = None) -> None:
        super().__init__(Reason.BODY_TOO_LARGE, bytes_read, log_reason)


@dataclass(frozen=True, slots=True)
class Headers:
    """Request headers as received: lower-case names, every value kept in order."""

    items: tuple[tuple[str, str], ...]

    def get(self, name: str) -> str | None:
        values = self.get_all(name)
        return values[0] if values else None

    def get_all(self, name: str) -> list[str]:
        return [value for key, value in self.items if key == name]

    def only(self, name: str, reason: Reason) -> str | None:
        """The header's single value; raise FramingError if it is repeated."""
        values = self.get_all(name)
        if len(values) > 1:
            raise FramingError(reason, log_reason=f"duplicate_{name.replace('-', '_')}")
        return values[0] if values else None


def parse_headers(raw: Iterable[tuple[bytes, bytes]], max_bytes: int) -> Headers:
    """Decode raw ASGI headers; raise FramingError for size or control characters."""
    items: list[tuple[str, str]] = []
    total = 0
    for name, value in raw:
        total += len(name) + len(value) + 4
        if total > max_bytes:
            raise FramingError(Reason.HEADERS_TOO_LARGE)
        if _BAD_VALUE.search(value):
            raise FramingError(Reason.INVALID_HEADER, log_reason="control_character")
        items.append((name.decode("latin-1").lower(), value.decode("latin-1")))
    return Headers(tuple(items))


def check_forwarded_ascii(headers: Headers, forwarded: frozenset[str]) -> None:
    """Refuse a non-ASCII value in a header the node would send on to a provider.

    Field values are read as ISO-8859-1 (RFC 9110 section 5.5) and the provider
    client writes text as UTF-8, so bytes over 0x7F would reach the provider
    changed: an ``X-Road-UserId`` would name another person. The node signs
    some of these fields, and a signature base is ASCII (RFC 9421 section 2.5).
    So they must be ASCII; ``invalid_header`` (``non_ascii_header``) otherwise.
    """
    for name, value in headers.items:
        if name in forwarded and not value.isascii():
            raise FramingError(Reason.INVALID_HEADER, log_reason="non_ascii_header")


def check_method(method: str) -> None:
    if method not in METHODS:
        raise method_not_allowed(_METHOD_ORDER)


def method_not_allowed(
    allowed: Iterable[str], log_reason: str | None = None
) -> FramingError:
    """405 ``method_not_allowed`` with the ``Allow`` header that RFC 9110 section
    15.5.6 requires: the methods the target does serve."""
    return FramingError(
        Reason.METHOD_NOT_ALLOWED,
        log_reason=log_reason,
        headers={"allow": ", ".join(allowed)},
    )


def check_host(headers: Headers, allowed: frozenset[str]) -> str:
    """The request's Host, which must appear once and be in the allow-list."""
    host = headers.only("host", Reason.INVALID_HOST)
    if host is None or host.lower() not in allowed:
        raise FramingError(Reason.INVALID_HOST)
    return host


def declared_length(headers: Headers) -> int | None:
    """The single, well-formed Content-Length, if any (RFC 9112 section 6.3)."""
    values = headers.get_all("content-length")
    if not values:
        return None
    if len(values) > 1 or "," in values[0]:
        raise FramingError(Reason.DUPLICATE_CONTENT_LENGTH)
    text = values[0].strip()
    if not text.isdigit() or not text.isascii() or len(text) > 15:
        raise FramingError(
            Reason.AMBIGUOUS_MESSAGE_LENGTH, log_reason="bad_content_length"
        )
    if headers.get("transfer-encoding") is not None:
        raise FramingError(Reason.AMBIGUOUS_MESSAGE_LENGTH)
    return int(text)


def client_request_id(headers: Headers) -> str | None:
    """A client-chosen X-Road-Request-Id, echoed only when it is plainly safe."""
    value = headers.get("x-road-request-id")
    if value is not None and _REQUEST_ID.fullmatch(value):
        return value
    return None


def check_client_digest(headers: Headers, body: bytes) -> bool:
    """Whether the client sent a ``Content-Digest``; if so it must match ``body``.

    The digest covers the bytes as received (a leading BOM included, C21), so it is
    checked before anything strips or maps them. Raises FramingError
    (``INVALID_CONTENT_DIGEST``) for a repeated, malformed or mismatching value.
    """
    value = headers.only("content-digest", Reason.INVALID_CONTENT_DIGEST)
    if value is None:
        return False
    if not check_content_digest(value, body):
        raise FramingError(Reason.INVALID_CONTENT_DIGEST)
    return True


def declared_body(method: str, headers: Headers) -> int | None:
    """The declared Content-Length, as :func:`declared_length` reads it.

    Raises FramingError as that does, and ``body_not_allowed`` for a GET, HEAD or
    DELETE that declares content (a length above 0, or any Transfer-Encoding):
    servers disagree on whether to read such a body, which is what request
    smuggling exploits, so it is refused, never read or forwarded.
    """
    bodyless = method in BODYLESS_METHODS
    if bodyless and headers.get("transfer-encoding") is not None:
        # Before any Content-Length beside it: no framing makes this one valid.
        raise FramingError(Reason.BODY_NOT_ALLOWED)
    length = declared_length(headers)
    if bodyless and length:
        raise FramingError(Reason.BODY_NOT_ALLOWED)
    return length


async def read_body(
    receive: Receive, method: str, headers: Headers, max_bytes: int
) -> bytes:
    """Read the whole body, never more than ``max_bytes``; raise FramingError.

    A declared length over the cap is refused before a byte is read (and before any
    ``100 Continue``); a chunked body is cut off at the first byte past the cap
    (both raise :class:`BodyTooLargeError`, which says how much was read). A
    client that disconnects mid-body gets ``client_aborted``: the partial body is
    never treated as complete. Every failure once reading has begun, including
    the server's own (a malformed chunk, a slow body), is a
    :class:`PartialBodyError` with the count of bytes read.
    """
    length = declared_body(method, headers)
    if method in BODYLESS_METHODS:
        return b""
    if length is not None and length > max_bytes:
        raise BodyTooLargeError(0, log_reason="declared_too_large")

    chunks: list[bytes] = []
    size = 0
    while True:
        try:
            message = await receive()
        except PartialBodyError:
            raise
        except FramingError as exc:
            # The server failed the body (a malformed chunk, a slow client).
            raise PartialBodyError(exc.reason, size, exc.log_reason) from None
        if message["type"] == "http.disconnect":
            raise PartialBodyError(Reason.CLIENT_ABORTED, size)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise BodyTooLargeError(size)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
