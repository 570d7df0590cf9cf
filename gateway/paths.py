"""Step 3, resolve: the service id and endpoint of an ``/r1/...`` request target.

The route form is ``/r1/{instance}/{class}/{member}/{subsystem}/{service}{endpoint}``.
:func:`resolve` takes the raw path as received (still percent-encoded) and applies
one fixed order of rules, so that access rules match and the provider receives
exactly one form of the endpoint (CVE-2019-9901, CVE-2021-29492, CVE-2025-32431):

1. The raw path is printable ASCII without a backslash, ``?`` or ``#``; its length
   was already capped by the caller. It starts with ``/r1/``, exactly.
2. The path is split on ``/`` first, then each segment is percent-decoded exactly
   once; a ``%`` not followed by two hex digits is not valid.
3. A decoded segment must not contain ``/``, ``\\``, ``%`` (so ``%25`` double
   encoding is refused), ``?``, ``#``, NUL or any control character (C0, DEL, C1),
   and must be valid UTF-8.
4. The first five segments are the service id (:class:`ServiceId`).
5. The rest is the endpoint. An empty segment (``//``) is refused; only the last
   segment may be empty, which keeps a trailing slash. Dot-segments (``.`` and
   ``..``, also when written ``%2e``) are removed as RFC 3986 section 5.2.4 does;
   a ``..`` that would climb above the endpoint root is refused. ``;`` is a literal
   character: no path parameters are stripped.
6. The endpoint is re-encoded once: each segment is quoted with the RFC 3986
   ``pchar`` set (without ``%``). :attr:`Target.endpoint` is the decoded form that
   access rules and adapters match; :attr:`Target.endpoint_encoded` is the form
   that is forwarded.
7. The query is kept byte for byte, but must be printable ASCII without ``#``
   (the provider would read a raw ``#`` as the start of a fragment).

Every failure is a :class:`ResolutionError`: ``INVALID_PATH`` for the path and
query rules, ``INVALID_IDENTIFIER`` for a malformed service id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote

from gateway.errors import Reason, ResolutionError
from gateway.identifiers import ClientId, ServiceId

PREFIX: Final = "/r1/"

#: RFC 3986 ``pchar`` minus ``%``: what stays unquoted in a forwarded segment
#: (letters, digits and ``-._~`` are always kept by :func:`urllib.parse.quote`).
_PCHAR_SAFE: Final = "!$&'()*+,;=:@"

_RAW_ALLOWED: Final = re.compile(r"[\x21-\x7e]*", re.ASCII)
_RAW_FORBIDDEN: Final = frozenset("\\?#")
_PERCENT: Final = re.compile(r"%([0-9A-Fa-f]{2})?")
_DECODED_FORBIDDEN: Final = re.compile(r"[/\\%?#\x00-\x1f\x7f-\x9f]")
_ID_SEGMENTS: Final = 5


@dataclass(frozen=True, slots=True)
class Target:
    """A resolved request target: the service and its normalised endpoint."""

    service: ServiceId
    #: Decoded and normalised; starts with ``/``. Access rules match this form.
    endpoint: str
    #: :attr:`endpoint` percent-encoded once: the form forwarded to the provider.
    endpoint_encoded: str
    #: The raw query string, unchanged (without the ``?``).
    query: str


def resolve(raw_path: bytes | str, query: bytes | str) -> Target:
    """Resolve a raw request path and query into a :class:`Target`.

    Raises :class:`ResolutionError` with ``INVALID_PATH`` when the path or query
    breaks a rule of this module, or ``INVALID_IDENTIFIER`` when the service id is
    malformed.
    """
    path = _printable_ascii(raw_path)
    if not path.startswith(PREFIX) or any(c in _RAW_FORBIDDEN for c in path):
        raise ResolutionError(Reason.INVALID_PATH)

    segments = [_decode_segment(raw) for raw in path[len(PREFIX) :].split("/")]
    if len(segments) < _ID_SEGMENTS:
        raise ResolutionError(Reason.INVALID_IDENTIFIER)

    service = ServiceId(ClientId(*segments[:4]), segments[4])
    endpoint = _normalise(segments[_ID_SEGMENTS:])
    return Target(
        service=service,
        endpoint=_join(endpoint),
        endpoint_encoded=_join([quote(s, safe=_PCHAR_SAFE) for s in endpoint]),
        query=_query(query),
    )


def _printable_ascii(value: bytes | str) -> str:
    """The value as text if it is printable ASCII; raise INVALID_PATH otherwise."""
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            raise ResolutionError(Reason.INVALID_PATH) from None
    if not _RAW_ALLOWED.fullmatch(value):
        raise ResolutionError(Reason.INVALID_PATH)
    return value


def _query(raw: bytes | str) -> str:
    query = _printable_ascii(raw)
    if "#" in query:
        raise ResolutionError(Reason.INVALID_PATH)
    return query


def _decode_segment(raw: str) -> str:
    """Percent-decode one raw segment exactly once, strictly (rules 2 and 3)."""
    decoded = _percent_decode(raw) if "%" in raw else raw
    if _DECODED_FORBIDDEN.search(decoded):
        raise ResolutionError(Reason.INVALID_PATH)
    return decoded


def _percent_decode(raw: str) -> str:
    out = bytearray()
    position = 0
    for match in _PERCENT.finditer(raw):
        if match.group(1) is None:
            raise ResolutionError(Reason.INVALID_PATH)
        out += raw[position : match.start()].encode("ascii")
        out.append(int(match.group(1), 16))
        position = match.end()
    out += raw[position:].encode("ascii")

    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise ResolutionError(Reason.INVALID_PATH) from None


def _normalise(segments: list[str]) -> list[str]:
    """Remove dot-segments (RFC 3986 section 5.2.4) from decoded endpoint segments.

    A trailing empty segment stands for a trailing slash and is kept; so is the
    directory form a final ``.`` or ``..`` leaves (``/a/b/..`` becomes ``/a/``).
    """
    out: list[str] = []
    last = len(segments) - 1
    for index, segment in enumerate(segments):
        if segment == "" and index != last:
            raise ResolutionError(Reason.INVALID_PATH)
        if segment in {".", ".."}:
            if segment == ".." and not out:
                raise ResolutionError(Reason.INVALID_PATH)
            if segment == "..":
                out.pop()
            if index == last and out:
                out.append("")
            continue
        out.append(segment)
    return out


def _join(segments: list[str]) -> str:
    return "/" + "/".join(segments)
