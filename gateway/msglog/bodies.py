"""Message bodies in the log: a digest, or encrypted for the security officers.

Per service (``ServiceEntry.body_log``) a body is logged as its SHA-256 only
(``digest``) or also encrypted (``encrypted``). Encryption is AES-256-GCM with a
data key per archive period; the data key is wrapped for each security officer's
X25519 public key (``config/officers/*.pem``): an ephemeral X25519 agreement,
HKDF-SHA256 to a key-encryption key, and AES-256-GCM over the data key. The node
holds only public keys, so once a period's data key is dropped from memory the
node cannot read that period's bodies back; an officer's private key can.

A body over the service's ``max_body_bytes`` is logged as its digest only, and its
entry says so (``"over_cap": true``). No body, key or plaintext ever goes into an
error or log line.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.errors import ConfigError, NodeError, Reason

BODY_ALG = "A256GCM"
WRAP_ALG = "X25519-HKDF-SHA256-A256GCM"
_WRAP_INFO = b"shiksha-mediator/body-key-wrap/1"
_BODY_AAD = b"shiksha-mediator/body/1"


class BodyKeyError(NodeError):
    """A body or data key cannot be decrypted with the key given.

    ``detail`` says which step failed, never key or body content.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(Reason.LOG_UNAVAILABLE, log_reason="log_body_decrypt_failed")
        self.detail = detail

    def __str__(self) -> str:
        return f"cannot decrypt: {self.detail}"


def load_officer_keys(directory: Path) -> dict[str, X25519PublicKey]:
    """The officers' X25519 public keys, ``<officer id>.pem`` in ``directory``.

    Raises ConfigError naming the file if one is not an X25519 public key PEM, and
    if the directory holds none.
    """
    keys: dict[str, X25519PublicKey] = {}
    for path in sorted(directory.glob("*.pem")):
        try:
            key = serialization.load_pem_public_key(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(str(path), "not a PEM public key") from exc
        if not isinstance(key, X25519PublicKey):
            raise ConfigError(str(path), "an officer's key must be X25519")
        keys[path.stem] = key
    if not keys:
        raise ConfigError(str(directory), "no officer public key (*.pem)")
    return keys


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise BodyKeyError(f"{what} is missing")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise BodyKeyError(f"{what} is not base64") from exc


def _kek(shared: bytes, period: str, officer: str) -> bytes:
    info = b"|".join((_WRAP_INFO, period.encode(), officer.encode()))
    return HKDF(hashes.SHA256(), 32, salt=None, info=info).derive(shared)


def wrap_data_key(
    data_key: bytes, period: str, officers: Mapping[str, X25519PublicKey]
) -> dict[str, Any]:
    """The envelope of a period's data key: one wrapped copy per officer."""
    wrapped = []
    for officer, public in sorted(officers.items()):
        ephemeral = X25519PrivateKey.generate()
        kek = _kek(ephemeral.exchange(public), period, officer)
        nonce = os.urandom(12)
        epk = ephemeral.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        wrapped.append(
            {
                "officer": officer,
                "epk": _b64(epk),
                "nonce": _b64(nonce),
                "key": _b64(AESGCM(kek).encrypt(nonce, data_key, period.encode())),
            }
        )
    return {"alg": WRAP_ALG, "period": period, "wrapped": wrapped}


def unwrap_data_key(
    envelope: Mapping[str, Any], officer: str, private: X25519PrivateKey
) -> bytes:
    """The data key of ``envelope``, unwrapped with ``officer``'s private key.

    Raises BodyKeyError if the envelope has no copy for ``officer`` or the key
    does not open it.
    """
    period = envelope.get("period")
    if envelope.get("alg") != WRAP_ALG or not isinstance(period, str):
        raise BodyKeyError("not a wrapped data key")
    entries = [e for e in envelope.get("wrapped", ()) if e.get("officer") == officer]
    if not entries:
        raise BodyKeyError(f"no copy of the data key for officer {officer}")
    entry = entries[0]
    try:
        epk = X25519PublicKey.from_public_bytes(_unb64(entry.get("epk"), "epk"))
        kek = _kek(private.exchange(epk), period, officer)
        return AESGCM(kek).decrypt(
            _unb64(entry.get("nonce"), "nonce"),
            _unb64(entry.get("key"), "key"),
            period.encode(),
        )
    except (InvalidTag, ValueError) as exc:
        raise BodyKeyError("the officer's key does not open the data key") from exc


@dataclass(frozen=True, slots=True)
class PeriodKey:
    """One archive period's data key and its envelope for the officers."""

    period: str
    data_key: bytes
    envelope: dict[str, Any]

    @classmethod
    def new(cls, period: str, officers: Mapping[str, X25519PublicKey]) -> PeriodKey:
        """A fresh random data key for ``period``, wrapped for ``officers``."""
        data_key = AESGCM.generate_key(bit_length=256)
        return cls(period, data_key, wrap_data_key(data_key, period, officers))


def _aad(period: str, message_id: str, part: str) -> bytes:
    return b"|".join((_BODY_AAD, period.encode(), message_id.encode(), part.encode()))


def body_entry(
    body: bytes,
    *,
    mode: Literal["digest", "encrypted"],
    max_bytes: int | None,
    key: PeriodKey | None,
    message_id: str,
    part: str,
) -> dict[str, Any]:
    """What the log keeps of one body (``part`` is ``request`` or ``response``).

    Always its SHA-256 and size; the ciphertext too if ``mode`` is ``encrypted``,
    a ``key`` is given and the body is within ``max_bytes``. Over the cap the
    entry says ``over_cap``. The ciphertext is bound to the message id and part.
    """
    entry: dict[str, Any] = {
        "sha256": hashlib.sha256(body).hexdigest(),
        "size": len(body),
        "logged": "digest",
    }
    if mode != "encrypted" or key is None or not body:
        return entry
    if max_bytes is not None and len(body) > max_bytes:
        return {**entry, "over_cap": True}
    nonce = os.urandom(12)
    sealed = AESGCM(key.data_key).encrypt(
        nonce, body, _aad(key.period, message_id, part)
    )
    return {
        **entry,
        "logged": "encrypted",
        "alg": BODY_ALG,
        "period": key.period,
        "nonce": _b64(nonce),
        "ciphertext": _b64(sealed),
    }


def open_body(
    entry: Mapping[str, Any], data_key: bytes, *, message_id: str, part: str
) -> bytes:
    """The plaintext of an encrypted body entry, checked against its digest.

    Raises BodyKeyError if the entry is not encrypted, the key does not open it,
    or the plaintext does not match the logged SHA-256.
    """
    period = entry.get("period")
    if entry.get("logged") != "encrypted" or not isinstance(period, str):
        raise BodyKeyError("the body was logged as a digest only")
    try:
        body = AESGCM(data_key).decrypt(
            _unb64(entry.get("nonce"), "nonce"),
            _unb64(entry.get("ciphertext"), "ciphertext"),
            _aad(period, message_id, part),
        )
    except (InvalidTag, ValueError) as exc:
        raise BodyKeyError("the data key does not open the body") from exc
    if hashlib.sha256(body).hexdigest() != entry.get("sha256"):
        raise BodyKeyError("the body does not match its logged digest")
    return body
