"""Content-Digest (RFC 9530): the digest of a message body, written and checked.

Signatures cover the ``content-digest`` field rather than the body, so a body is
bound to its signature through the digest checked here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Final

import http_sf

_DIGESTS: Final = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}


def content_digest(body: bytes) -> str:
    """The ``Content-Digest`` value for ``body``: ``sha-256=:<base64>:``."""
    return f"sha-256=:{base64.b64encode(hashlib.sha256(body).digest()).decode()}:"


def check_content_digest(header: str | None, body: bytes) -> bool:
    """Whether a ``Content-Digest`` value is well formed and matches ``body``.

    The value must be a Structured Field dictionary of byte sequences without
    parameters, naming only ``sha-256`` or ``sha-512``, each once and of the right
    length; every digest present must match.
    """
    if header is None:
        return False
    members = _parse_digest(header)
    if not members:
        return False
    return all(
        hmac.compare_digest(digest, _DIGESTS[name](body).digest())
        for name, digest in members.items()
    )


def _parse_digest(header: str) -> dict[str, bytes] | None:
    duplicate = False

    def on_duplicate(_name: str, _context: str) -> None:
        nonlocal duplicate
        duplicate = True

    try:
        parsed = http_sf.parse(
            header.encode("ascii"), tltype="dictionary", on_duplicate_key=on_duplicate
        )
    except (ValueError, TypeError, UnicodeEncodeError):
        return None
    if duplicate or not isinstance(parsed, dict):
        return None

    digests: dict[str, bytes] = {}
    for name, member in parsed.items():
        if not isinstance(member, tuple):
            return None
        value, params = member
        hasher = _DIGESTS.get(name)
        if hasher is None or params or not isinstance(value, bytes):
            return None
        if len(value) != hasher().digest_size:
            return None
        digests[name] = value
    return digests
