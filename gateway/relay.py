"""What the node relays between a client and a provider: the checks and reductions.

The exchange pipeline (:mod:`gateway.exchange`) decides each step; these functions
hold its rules for the bytes and header fields it passes on, on plain data:

- the forwarded request: a body says it is JSON (:func:`require_json`) and loses
  one leading BOM (:func:`strip_bom`); an adapter's endpoint is encoded once
  (:func:`encode_path`), relative to the service's URL (:func:`service_relative`);
- the provider's answer: only the allow-listed header fields pass, and only in
  visible ASCII (:func:`forwarded_headers`); a JSON body loses one leading BOM
  (:func:`without_bom`); an error body is reduced to its error code
  (:func:`error_only`).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from gateway import wire
from gateway.errors import PayloadError, Reason, UpstreamError
from gateway.jsonbody import BOM
from gateway.upstream import UpstreamResponse

__all__ = [
    "content_type",
    "encode_path",
    "error_only",
    "forwarded_headers",
    "is_json",
    "require_json",
    "service_relative",
    "strip_bom",
    "without_bom",
]

#: type "/" subtype, each a token (RFC 9110 section 8.3.1).
_MEDIA_TYPE = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+/[a-z0-9!#$%&'*+.^_`|~-]+", re.ASCII)
#: A header field value the node passes on: visible ASCII, spaces and tabs.
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e]*")


# -- the forwarded request -------------------------------------------------------------


def require_json(content_type: str | None) -> None:
    """A request body must say it is JSON (RFC 8259 ``application/json`` or a
    ``+json`` type); raise PayloadError(UNSUPPORTED_MEDIA_TYPE) otherwise."""
    if not is_json(content_type):
        raise PayloadError(Reason.UNSUPPORTED_MEDIA_TYPE)


def is_json(content_type: str | None) -> bool:
    """Whether a media type is ``application/json`` or a ``+json`` type.

    Only one media type counts (RFC 9110 section 8.3.1): a list of them, such
    as ``text/plain, application/problem+json``, is none.
    """
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if not _MEDIA_TYPE.fullmatch(media):
        return False
    return media == "application/json" or media.endswith("+json")


def strip_bom(body: bytes) -> bytes:
    """A request body less one leading UTF-8 BOM; raises nothing."""
    # One leading UTF-8 BOM is accepted and removed (X-Road does the same);
    # parse_json has already refused a second one or one elsewhere.
    return body[len(BOM) :] if body.startswith(BOM) else body


def encode_path(path: str) -> str:
    """An adapter's decoded endpoint path, encoded once for the provider."""
    if not path.startswith("/"):
        path = "/" + path
    return service_relative(
        "/".join(
            quote(segment, safe="!$&'()*+,;=:@-._~") for segment in path.split("/")
        )
    )


def service_relative(encoded: str) -> str:
    """What follows the service's URL: the service root is the URL itself, never
    URL + "/" (which a provider may answer with a redirect)."""
    return "" if encoded == "/" else encoded


# -- the provider's answer -------------------------------------------------------------


def without_bom(response: UpstreamResponse) -> bytes | None:
    """A JSON answer passed on as the provider wrote it, less one leading BOM.

    The rule for request bodies, applied to responses (C21): one leading BOM is
    removed, a second one makes the answer invalid. None when there is nothing
    to remove, so that the provider's bytes go on untouched.
    """
    if not response.body.startswith(BOM) or not is_json(content_type(response)):
        return None
    body = response.body[len(BOM) :]
    if body.startswith(BOM):
        raise UpstreamError(
            Reason.UPSTREAM_RESPONSE_INVALID, log_reason="upstream_invalid_json"
        )
    return body


def content_type(response: UpstreamResponse) -> str | None:
    """The provider's first ``Content-Type`` value, or None."""
    for name, value in response.headers:
        if name == wire.CONTENT_TYPE:
            return value
    return None


def error_only(document: Any) -> dict[str, str]:
    """A provider's error body reduced to its error code: no data rides along."""
    if isinstance(document, dict) and isinstance(document.get("error"), str):
        return {"error": document["error"][:64]}
    return {"error": "provider_error"}


def forwarded_headers(response: UpstreamResponse) -> dict[str, str]:
    """The provider's header fields that the client gets.

    Raises UpstreamError (``upstream_response_invalid``) for a value outside
    visible ASCII: the node signs and sends field values as they are, and a
    character it cannot send would otherwise fail the answer after the exchange.
    """
    headers: dict[str, str] = {}
    for name, value in response.headers:
        if name not in wire.FORWARDED_RESPONSE_HEADERS:
            continue
        if not _FIELD_VALUE.fullmatch(value):
            raise UpstreamError(
                Reason.UPSTREAM_RESPONSE_INVALID, log_reason="upstream_header_not_ascii"
            )
        headers[name] = value
    return headers
