"""Signed checkpoints: the log's size and root hash at a moment, under a node key.

A checkpoint is ``{"origin", "tree_size", "root_hash", "timestamp", "key_id",
"signature"}``. The signed bytes are the RFC 8785 canonical JSON of the checkpoint
without ``signature``; the signature is base64 (standard alphabet, padded).

Keys are Ed25519 or ECDSA P-256 (ES256); the public key's type decides how a
signature is checked, never a field of the checkpoint. An ES256 signature is the
64-byte ``r || s`` of RFC 7518 section 3.4, as in a JWS.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol, TypeAlias

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from gateway.errors import NodeError, Reason

PublicKey: TypeAlias = Ed25519PublicKey | ec.EllipticCurvePublicKey
PrivateKey: TypeAlias = Ed25519PrivateKey | ec.EllipticCurvePrivateKey

DEFAULT_ORIGIN = "shiksha-mediator"
_P256_BYTES = 32


class CheckpointSigner(Protocol):
    """Signs checkpoint bytes with the node's active key."""

    def sign_checkpoint(self, data: bytes) -> tuple[str, bytes]:
        """Return ``(key id, signature)`` over ``data``."""
        ...


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed statement of the log's size and root hash."""

    origin: str
    tree_size: int
    root_hash: str
    timestamp: float
    key_id: str
    signature: str

    def signed_bytes(self) -> bytes:
        """The RFC 8785 canonical JSON of the checkpoint without ``signature``."""
        body = self.to_dict()
        del body["signature"]
        return rfc8785.dumps(body)

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint as a JSON object."""
        return asdict(self)

    def to_json(self) -> bytes:
        """The checkpoint as canonical JSON, signature included."""
        return rfc8785.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> Checkpoint:
        """Read a checkpoint; raises ValueError if a field is missing or mistyped."""
        try:
            checkpoint = cls(
                origin=value["origin"],
                tree_size=value["tree_size"],
                root_hash=value["root_hash"],
                timestamp=value["timestamp"],
                key_id=value["key_id"],
                signature=value["signature"],
            )
        except (KeyError, TypeError) as exc:
            raise ValueError("checkpoint fields are missing") from exc
        size = checkpoint.tree_size
        # bool is an int to Python; true is not a size.
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError("checkpoint tree_size is not a size")
        return checkpoint


def make_checkpoint(
    origin: str,
    tree_size: int,
    root_hash: bytes,
    timestamp: float,
    signer: CheckpointSigner,
) -> Checkpoint:
    """Build and sign a checkpoint.

    The key id is part of the signed bytes, so the signer's ``key_id`` attribute is
    used when it has one; a signer that answers with another id (its key rotated)
    is asked again with that id. Raises NodeError(SIGNING_UNAVAILABLE) if the ids
    never agree; whatever the signer raises propagates.
    """
    guess = getattr(signer, "key_id", "")
    key_id = guess if isinstance(guess, str) else ""
    for _ in range(3):
        unsigned = Checkpoint(origin, tree_size, root_hash.hex(), timestamp, key_id, "")
        signed_id, signature = signer.sign_checkpoint(unsigned.signed_bytes())
        if signed_id == key_id:
            return replace(unsigned, signature=base64.b64encode(signature).decode())
        key_id = signed_id
    raise NodeError(Reason.SIGNING_UNAVAILABLE, log_reason="checkpoint_key_unstable")


def verify_signature(checkpoint: Checkpoint, key: PublicKey) -> bool:
    """Whether the checkpoint's signature is valid under ``key``."""
    try:
        signature = base64.b64decode(checkpoint.signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    data = checkpoint.signed_bytes()

    try:
        if isinstance(key, Ed25519PublicKey):
            key.verify(signature, data)
            return True
        if len(signature) != 2 * _P256_BYTES or not isinstance(key.curve, ec.SECP256R1):
            return False
        r = int.from_bytes(signature[:_P256_BYTES], "big")
        s = int.from_bytes(signature[_P256_BYTES:], "big")
        key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


class KeySigner:
    """A :class:`CheckpointSigner` over one private key held in memory."""

    def __init__(self, key_id: str, private_key: PrivateKey) -> None:
        self.key_id = key_id
        self._key = private_key

    def sign_checkpoint(self, data: bytes) -> tuple[str, bytes]:
        """Sign with Ed25519, or ES256 as 64-byte ``r || s``."""
        if isinstance(self._key, Ed25519PrivateKey):
            return self.key_id, self._key.sign(data)
        der = self._key.sign(data, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return self.key_id, r.to_bytes(_P256_BYTES, "big") + s.to_bytes(
            _P256_BYTES, "big"
        )


def public_jwk(key_id: str, key: PublicKey) -> dict[str, str]:
    """The JWK (RFC 8037 OKP or RFC 7518 EC) of a public key, with its ``kid``."""
    if isinstance(key, Ed25519PublicKey):
        raw = key.public_bytes_raw()
        return {"kty": "OKP", "crv": "Ed25519", "kid": key_id, "x": _b64url(raw)}
    numbers = key.public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "kid": key_id,
        "x": _b64url(numbers.x.to_bytes(_P256_BYTES, "big")),
        "y": _b64url(numbers.y.to_bytes(_P256_BYTES, "big")),
    }


def load_jwks(jwks: Mapping[str, Any]) -> dict[str, PublicKey]:
    """The Ed25519 and P-256 public keys of a JWKS, by ``kid``.

    Entries without a ``kid``, of another type, or malformed are left out, so a
    checkpoint signed by one of them reports an unknown key id.
    """
    keys: dict[str, PublicKey] = {}
    entries = jwks.get("keys")
    if not isinstance(entries, list):
        return keys
    for entry in entries:
        key = _key_from_jwk(entry) if isinstance(entry, Mapping) else None
        if key is not None:
            keys[str(entry["kid"])] = key
    return keys


def _key_from_jwk(jwk: Mapping[str, Any]) -> PublicKey | None:
    if not isinstance(jwk.get("kid"), str):
        return None
    try:
        if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519":
            return Ed25519PublicKey.from_public_bytes(_unb64url(jwk["x"]))
        if jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
            x = int.from_bytes(_unb64url(jwk["x"]), "big")
            y = int.from_bytes(_unb64url(jwk["y"]), "big")
            return ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    except (KeyError, TypeError, ValueError, binascii.Error):
        return None
    return None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
