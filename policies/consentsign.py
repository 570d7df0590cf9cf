"""Node signatures over consent revisions, so that a history is evidence.

Every revision's hash is signed with the node's keyring: the signed bytes are a fixed,
versioned prefix and the hex hash, so that a consent signature can never be taken for
a message-log checkpoint signature made by the same key, or the other way round. A
retired key still verifies; a revoked key does not.
"""

from __future__ import annotations

import base64
import binascii
from typing import Protocol

_DOMAIN = b"shiksha-mediator consent-revision v1\n"


class RevisionSigner(Protocol):
    """What signs and verifies revisions: :class:`gateway.keyring.Keyring` is one."""

    def sign_checkpoint(self, data: bytes) -> tuple[str, bytes]: ...

    def verify(self, kid: str, data: bytes, signature: bytes) -> bool: ...


def statement(revision_hash: str) -> bytes:
    """The bytes a revision signature covers."""
    return _DOMAIN + revision_hash.encode("ascii")


def sign_revision(signer: RevisionSigner, revision_hash: str) -> tuple[str, str]:
    """``(kid, base64url signature)`` over the revision hash; NodeError if no key."""
    kid, signature = signer.sign_checkpoint(statement(revision_hash))
    return kid, base64.urlsafe_b64encode(signature).decode("ascii")


def signature_valid(
    verifier: RevisionSigner, revision_hash: str, kid: str | None, signature: str | None
) -> bool:
    """True if ``signature`` by ``kid`` covers ``revision_hash``; False if missing."""
    if not kid or not signature:
        return False
    try:
        raw = base64.urlsafe_b64decode(signature.encode("ascii"))
    except (binascii.Error, ValueError):
        return False
    return verifier.verify(kid, statement(revision_hash), raw)
