"""Key states, keys and their JSON records: the plain data of a keyring.

:func:`effective` is the rotation schedule as a pure function: given the stored
states and a time, the states every reader must act on.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, replace
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from gateway import keyfiles
from gateway.directory import RegisteredKey
from gateway.errors import ConfigError
from gateway.keyfiles import ECDSA_P256, ED25519, JWS_ALGORITHMS, PrivateKey, PublicKey

#: Default time a retired key keeps verifying.
DEFAULT_RETAIN_S = 400 * 86_400
_P256_SIZE = 32


class KeyState(enum.StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    RETIRED = "retired"
    REVOKED = "revoked"


class Signer(Protocol):
    """What signs for the node: a key in a PEM file or in an HSM token.

    ``algorithm`` is an RFC 9421 name; ``sign`` returns raw ``r || s`` for ECDSA.
    """

    @property
    def kid(self) -> str: ...

    @property
    def algorithm(self) -> str: ...

    def sign(self, data: bytes) -> bytes: ...

    def public_key(self) -> PublicKey: ...


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A private key that signs, named by ``kid``; its algorithm is an RFC 9421 name."""

    kid: str
    algorithm: str
    private_key: PrivateKey

    @property
    def jws_algorithm(self) -> str:
        return JWS_ALGORITHMS[self.algorithm]

    def public_key(self) -> PublicKey:
        return self.private_key.public_key()

    def sign(self, data: bytes) -> bytes:
        """Sign ``data``; ECDSA gives raw ``r || s`` (RFC 9421 section 3.3.4)."""
        if isinstance(self.private_key, ed25519.Ed25519PrivateKey):
            return self.private_key.sign(data)
        der = self.private_key.sign(data, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return r.to_bytes(_P256_SIZE, "big") + s.to_bytes(_P256_SIZE, "big")


@dataclass(frozen=True, slots=True)
class PublicKeyEntry:
    """A key's public half with its state and times (Unix seconds)."""

    kid: str
    algorithm: str
    public_key: PublicKey
    state: KeyState
    created_at: int
    activate_at: int | None = None
    retired_at: int | None = None
    revoked_at: int | None = None
    verify_until: int | None = None
    #: The PKCS#11 label of the key pair when the private half is in an HSM.
    hsm_label: str | None = None

    @property
    def jws_algorithm(self) -> str:
        return JWS_ALGORITHMS[self.algorithm]

    def verifies(self, at: int) -> bool:
        """Whether signatures by this key are accepted at ``at``."""
        if self.state is KeyState.REVOKED:
            return False
        return self.verify_until is None or at <= self.verify_until

    def registered(self) -> RegisteredKey:
        """This key as the directory describes a registered public key."""
        return RegisteredKey(self.kid, self.jws_algorithm, self.public_key)


def verify_raw(algorithm: str, key: PublicKey, data: bytes, signature: bytes) -> bool:
    """Whether ``signature`` (raw ``r || s`` for ECDSA) is valid for ``data``."""
    try:
        if isinstance(key, ed25519.Ed25519PublicKey) and algorithm == ED25519:
            key.verify(signature, data)
            return True
        if isinstance(key, ec.EllipticCurvePublicKey) and algorithm == ECDSA_P256:
            if len(signature) != 2 * _P256_SIZE:
                return False
            r = int.from_bytes(signature[:_P256_SIZE], "big")
            s = int.from_bytes(signature[_P256_SIZE:], "big")
            key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
            return True
    except InvalidSignature:
        return False
    return False


def effective(
    entries: dict[str, PublicKeyEntry], at: int, retain_s: int = DEFAULT_RETAIN_S
) -> dict[str, PublicKeyEntry]:
    """The states of ``entries`` at ``at``, with the rotation schedule applied.

    The signer is the active key or the newest pending key whose ``activate_at``
    has passed; every other active or due key is retired from the moment the
    signer took over, and verifies for ``retain_s`` more.
    """
    due = [
        e
        for e in entries.values()
        if e.state is KeyState.ACTIVE
        or (e.state is KeyState.PENDING and (e.activate_at or at + 1) <= at)
    ]
    if not due:
        return dict(entries)
    # Latest activation wins; on the same second a due pending key is the newer.
    signer = max(
        due,
        key=lambda e: (
            e.activate_at or e.created_at,
            e.state is KeyState.PENDING,
            e.created_at,
            e.kid,
        ),
    )
    since = signer.activate_at or signer.created_at
    result = dict(entries)
    result[signer.kid] = replace(signer, state=KeyState.ACTIVE)
    for other in due:
        if other.kid != signer.kid:
            result[other.kid] = replace(
                other,
                state=KeyState.RETIRED,
                retired_at=since,
                verify_until=since + retain_s,
            )
    return result


def next_due(entries: dict[str, PublicKeyEntry], at: int) -> float:
    """The first second after ``at`` at which a pending key falls due (or inf).

    Until then :func:`effective` names the same signer as at ``at``.
    """
    return min(
        (
            e.activate_at
            for e in entries.values()
            if e.state is KeyState.PENDING and e.activate_at and e.activate_at > at
        ),
        default=math.inf,
    )


# -- JSON forms -----------------------------------------------------------------


def to_record(entry: PublicKeyEntry) -> dict[str, Any]:
    record: dict[str, Any] = {
        "kid": entry.kid,
        "algorithm": entry.algorithm,
        "state": entry.state.value,
        "created_at": entry.created_at,
        "activate_at": entry.activate_at,
        "retired_at": entry.retired_at,
        "revoked_at": entry.revoked_at,
        "verify_until": entry.verify_until,
        "public_jwk": keyfiles.public_jwk(entry.kid, entry.public_key),
    }
    if entry.hsm_label is not None:
        record["hsm_label"] = entry.hsm_label
    return record


def parse_metadata(document: Any, source: str) -> dict[str, PublicKeyEntry]:
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ConfigError(source, "a keyring needs a 'keys' list")
    entries: dict[str, PublicKeyEntry] = {}
    for record in document["keys"]:
        entry = _parse_record(record, source)
        if entry.kid in entries:
            raise ConfigError(source, f"key {entry.kid} appears twice")
        entries[entry.kid] = entry
    return entries


def _parse_record(record: Any, source: str) -> PublicKeyEntry:
    try:
        kid = record["kid"]
        algorithm = record["algorithm"]
        state = KeyState(record["state"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(source, "a key record is malformed") from exc
    if not keyfiles.safe_kid(kid):
        raise ConfigError(source, "a key record has an unusable kid")
    if algorithm not in JWS_ALGORITHMS:
        raise ConfigError(source, f"key {kid}: unknown algorithm")
    hsm_label = record.get("hsm_label")
    if hsm_label is not None and not (
        keyfiles.safe_kid(hsm_label) and algorithm == ECDSA_P256
    ):
        raise ConfigError(source, f"key {kid}: unusable hsm_label")
    try:
        public = keyfiles.public_from_jwk(algorithm, record["public_jwk"])
        return PublicKeyEntry(
            kid,
            algorithm,
            public,
            state,
            int(record["created_at"]),
            _optional_int(record.get("activate_at")),
            _optional_int(record.get("retired_at")),
            _optional_int(record.get("revoked_at")),
            _optional_int(record.get("verify_until")),
            hsm_label,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(source, f"key {kid}: the record is malformed") from exc


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)
