"""RFC 9421 signature bases for the messages this node writes, built directly.

The node signs every request it forwards and every response it returns over a fixed
set of components whose values it wrote itself. Resolving them through a general
HTTP Message Signatures library re-parses the URL, the header fields and the
signature parameters on every message; here the base is written in one pass from
the values as they are.

The fast path is taken only when every value is plainly within what RFC 9421
section 2.5 allows without transformation: visible ASCII, no surrounding
whitespace, a simple absolute ``http(s)`` URL. For anything else
the functions here return None and the
caller falls back to the library, which normalises or refuses.

Verifying uses the same functions: :mod:`gateway.sigverify` reads a received
signature only in one strict form (one member, quoted lower-case component ids
from a fixed set, plain parameters, padded base64), for which the
``@signature-params`` written here is exactly the text received, and it
resolves covered values only where these functions accept them, so the base is
the one the library would build from the same message. Whenever either does not
hold, the library reads and checks the signature as before.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final

#: Visible ASCII (RFC 9421 section 2.5 forbids control and non-ASCII characters).
_VISIBLE: Final = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")
_METHOD: Final = re.compile(r"[A-Z]{1,16}")
_PCT: Final = r"%[0-9A-Fa-f]{2}"
_SEGMENT_CHARS: Final = r"A-Za-z0-9._~!$&'()*+,;=:@\-"
#: An absolute URL without user information, IP literal or fragment, whose path and
#: query hold only RFC 3986 characters: the library keeps such a URL's spelling.
_URL: Final = re.compile(
    r"(?P<origin>https?://[A-Za-z0-9.\-]+(?::[0-9]{1,5})?)"
    rf"(?P<path>/(?:[{_SEGMENT_CHARS}/]|{_PCT})*)?"
    rf"(?P<query>\?(?:[{_SEGMENT_CHARS}/?]|{_PCT})*)?"
)
_PARAM_STRING: Final = re.compile(r"[\x20-\x7e]*")

Component = tuple[str, str]
Param = tuple[str, int | str]


def request_derived(method: str, url: str) -> list[Component] | None:
    """``@method`` and ``@target-uri`` of a request, or None for the library.

    None when the method is not a plain upper-case token or the URL is not a
    simple absolute ``http(s)`` URL (user information, an IP literal, a fragment,
    or characters outside RFC 3986 all go to the library).
    """
    if _METHOD.fullmatch(method) is None:
        return None
    target = _target_uri(url)
    if target is None:
        return None
    return [("@method", method), ("@target-uri", target)]


def response_derived(status: int) -> list[Component] | None:
    """``@status`` of a response, or None for a status outside 100-999."""
    if not 100 <= status <= 999:
        return None
    return [("@status", str(status))]


def field_components(
    headers: Mapping[str, str], names: Iterable[str]
) -> list[Component] | None:
    """The named fields present in ``headers`` as components, or None.

    None when a name occurs twice in different case (the library would combine
    the field lines) or a value is not plain visible ASCII.
    """
    lowered: dict[str, str] = {}
    for field, line in headers.items():
        key = field.lower()
        if key in lowered:
            return None
        lowered[key] = line

    components: list[Component] = []
    for name in names:
        value = lowered.get(name)
        if value is None:
            continue
        if _VISIBLE.fullmatch(value) is None:
            return None
        components.append((name, value))
    return components


def signature_base(
    components: Iterable[Component], params: Iterable[Param]
) -> tuple[bytes, str] | None:
    """The signature base (RFC 9421 section 2.5) and its ``@signature-params``.

    Components are (lower-case id, value) pairs, already resolved; parameters
    are (name, integer or string) pairs in the order they are to appear. None
    when a parameter string holds a character a Structured Field String cannot.
    """
    items = list(components)
    serialised = _params(params)
    if serialised is None:
        return None
    inner = " ".join(f'"{name}"' for name, _ in items)
    signature_params = f"({inner}){serialised}"
    lines = [f'"{name}": {value}' for name, value in items]
    lines.append(f'"@signature-params": {signature_params}')
    return "\n".join(lines).encode("ascii"), signature_params


def _target_uri(url: str) -> str | None:
    # RFC 9421 section 2.2.2: the target URI as the library renders it, with an
    # empty path given as "/".
    match = _URL.fullmatch(url)
    if match is None:
        return None
    path: str = match["path"] or "/"
    query: str = match["query"] or ""
    return f"{match['origin']}{path}{query}"


def _params(params: Iterable[Param]) -> str | None:
    parts: list[str] = []
    for name, value in params:
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            parts.append(f";{name}={value}")
            continue
        if _PARAM_STRING.fullmatch(value) is None:
            return None
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        parts.append(f';{name}="{escaped}"')
    return "".join(parts)
