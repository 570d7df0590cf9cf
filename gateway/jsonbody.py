"""One strict JSON parser for request bodies and provider responses, and the writer.

:func:`parse_json` applies these checks, in this order:

1. A ``charset`` parameter in the media type other than ``utf-8`` is refused
   (``UNSUPPORTED_MEDIA_TYPE``): JSON between systems is UTF-8 (RFC 8259 section 8.1).
2. Exactly one leading UTF-8 byte-order mark is stripped, as X-Road does for
   requests and responses alike. A second mark, or one anywhere else outside a
   string, is not JSON (``INVALID_JSON``).
3. The bytes are decoded as strict UTF-8: invalid, overlong and surrogate
   sequences are ``INVALID_ENCODING``, never replaced with U+FFFD.
4. A pre-scan that skips strings counts nesting; deeper than ``max_depth`` is
   ``JSON_TOO_DEEP`` before the parser recurses.
5. The text is parsed with the standard library: ``NaN`` and ``Infinity`` and
   trailing data are ``INVALID_JSON``; an integer literal of more than 30 digits
   or a float that is not finite (``1e400``) is ``INVALID_NUMBER``, checked
   before any conversion (CVE-2020-10735); a repeated object key is
   ``DUPLICATE_KEY``; an escaped lone surrogate (``"\\ud800"``) cannot be sent
   on as UTF-8 and is ``INVALID_ENCODING``.

Errors carry only their reason: never a value or position from the body.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from itertools import accumulate
from typing import Any, Final

import orjson

from gateway.errors import PayloadError, Reason

BOM: Final = b"\xef\xbb\xbf"
MAX_INTEGER_DIGITS: Final = 30

_BRACKET_DEPTH: Final = {"[": 1, "{": 1, "]": -1, "}": -1}
_NOT_BRACKET: Final = re.compile(r"[^\[\]{}]+")
_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89a-fA-F]")


def parse_json(
    body: bytes, *, max_depth: int = 32, content_type: str | None = None
) -> Any:
    """Parse a JSON body strictly and return the value.

    Raises :class:`PayloadError` with ``UNSUPPORTED_MEDIA_TYPE``,
    ``INVALID_ENCODING``, ``INVALID_JSON``, ``JSON_TOO_DEEP``, ``INVALID_NUMBER``
    or ``DUPLICATE_KEY`` as the module docstring describes.
    """
    # Step 1: the declared charset.
    if content_type is not None:
        _check_charset(content_type)

    # Step 2 and 3: one leading BOM, then strict UTF-8.
    if body.startswith(BOM):
        body = body[len(BOM) :]
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        # ``from None``: the decoding error holds the body bytes.
        raise PayloadError(Reason.INVALID_ENCODING) from None

    # Step 4: nesting, before the recursive parser sees the text.
    if _too_deep(text, max_depth):
        raise PayloadError(Reason.JSON_TOO_DEEP)

    # Step 5: the parse itself.
    value = _loads(text)
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(value):
        raise PayloadError(Reason.INVALID_ENCODING)
    return value


def dump_json(value: Any) -> bytes:
    """Write ``value`` as compact UTF-8 JSON for the wire.

    Never for bytes that are hashed or signed: use RFC 8785 canonical JSON there.
    Raises :class:`PayloadError`: ``INVALID_NUMBER`` for a float that is not
    finite, ``INVALID_ENCODING`` for a string with a lone surrogate and
    ``MAPPING_FAILED`` for a value that JSON cannot represent.
    """
    try:
        out = orjson.dumps(value)
    except orjson.JSONEncodeError:
        # orjson refuses integers beyond 64 bits, which this parser accepts.
        return _dump_stdlib(value)

    # orjson writes NaN and Infinity as null: look for them only if a null appears.
    if b"null" in out and _has_non_finite(value):
        raise PayloadError(Reason.INVALID_NUMBER)
    return out


def _check_charset(content_type: str) -> None:
    for parameter in content_type.split(";")[1:]:
        name, _, raw = parameter.partition("=")
        if name.strip().lower() != "charset":
            continue
        if raw.strip().strip('"').lower() != "utf-8":
            raise PayloadError(Reason.UNSUPPORTED_MEDIA_TYPE)


def _too_deep(text: str, max_depth: int) -> bool:
    """Whether arrays and objects nest deeper than ``max_depth``, strings skipped.

    Linear and without recursion: escaped backslashes and quotes are dropped, so
    that every remaining ``"`` opens or closes a string and splitting on it leaves
    the text outside strings at the even positions.
    """
    if text.count("[") + text.count("{") <= max_depth:
        return False
    unescaped = text.replace("\\\\", "").replace('\\"', "")
    outside = "".join(unescaped.split('"')[::2])
    brackets = _NOT_BRACKET.sub("", outside)
    steps = map(_BRACKET_DEPTH.__getitem__, brackets)
    return max(accumulate(steps), default=0) > max_depth


def _loads(text: str) -> Any:
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError:
        # ``from None``: the decode error holds the whole document.
        raise PayloadError(Reason.INVALID_JSON) from None
    except RecursionError:
        raise PayloadError(Reason.JSON_TOO_DEEP) from None


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise PayloadError(Reason.DUPLICATE_KEY)
    return result


def _constant(_name: str) -> Any:
    raise PayloadError(Reason.INVALID_JSON, log_reason="non_standard_constant")


def _integer(literal: str) -> int:
    if len(literal.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise PayloadError(Reason.INVALID_NUMBER)
    return int(literal)


def _float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise PayloadError(Reason.INVALID_NUMBER)
    return value


def _walk(value: Any) -> Iterator[Any]:
    """Every scalar, key and container in a value, without recursion or cycles."""
    stack = [value]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        yield item
        if isinstance(item, dict | list | tuple):
            if id(item) in seen:
                continue
            seen.add(id(item))
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)


def _has_lone_surrogate(value: Any) -> bool:
    for item in _walk(value):
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
    return False


def _has_non_finite(value: Any) -> bool:
    return any(isinstance(i, float) and not math.isfinite(i) for i in _walk(value))


def _dump_stdlib(value: Any) -> bytes:
    if _has_non_finite(value):
        raise PayloadError(Reason.INVALID_NUMBER)
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        raise PayloadError(
            Reason.MAPPING_FAILED, log_reason="unserialisable_value"
        ) from None
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise PayloadError(Reason.INVALID_ENCODING) from None


#: One decoder for every parse (``json.loads`` with hooks builds a new one a call).
_DECODER: Final = json.JSONDecoder(
    object_pairs_hook=_object,
    parse_constant=_constant,
    parse_int=_integer,
    parse_float=_float,
)
