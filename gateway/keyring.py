"""The node's signing keys and their states.

A keyring is a directory::

    keyring.json        metadata of every key: kid, algorithm, state and times,
                        with the public key as a JWK
    KID.key.pem         one private key per key, encrypted PKCS#8, mode 0600
    jwks.json           public keys of pending, active and retired keys

States move one way::

    pending ──▶ active ──▶ retired
       │          │           │
       └──────────┴───────────┴──▶ revoked

A pending key is published in ``jwks.json`` from the moment it is created, so that
providers know it before it signs; it signs from its ``activate_at`` time on (or
when activated by hand), and the key it replaces becomes retired. A retired key
still verifies what it signed; a revoked key verifies nothing and its private key
file is deleted. Every change rewrites ``keyring.json`` and ``jwks.json``
atomically (temporary file, then ``os.replace``).
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import json
import os
import secrets
import stat
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from gateway.directory import RegisteredKey
from gateway.errors import ConfigError, NodeError, Reason
from gateway.secrets import Secret

ED25519 = "ed25519"
ECDSA_P256 = "ecdsa-p256-sha256"

#: RFC 9421 algorithm names and the JWS ``alg`` of the same key type.
JWS_ALGORITHMS = {ED25519: "EdDSA", ECDSA_P256: "ES256"}

METADATA = "keyring.json"
JWKS = "jwks.json"
_P256_SIZE = 32

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey


class KeyState(enum.StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    RETIRED = "retired"
    REVOKED = "revoked"


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

    @property
    def jws_algorithm(self) -> str:
        return JWS_ALGORITHMS[self.algorithm]

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


class Keyring:
    """The keys of one node, loaded from and saved to a keyring directory."""

    def __init__(
        self,
        path: Path,
        passphrase: Secret,
        entries: dict[str, PublicKeyEntry],
        private: dict[str, PrivateKey],
    ) -> None:
        self.path = path
        self._passphrase = passphrase
        self._entries = entries
        self._private = private

    # -- creating and loading -------------------------------------------------------

    @classmethod
    def init(
        cls,
        path: Path,
        passphrase: Secret,
        algorithm: str = ED25519,
        *,
        now: float | None = None,
    ) -> Keyring:
        """Create a keyring with one active key.

        :raises ConfigError: the keyring already exists, the passphrase is empty or
            the algorithm is not ``ed25519`` or ``ecdsa-p256-sha256``.
        """
        if (path / METADATA).exists():
            raise ConfigError(str(path / METADATA), "a keyring already exists here")
        if not passphrase:
            raise ConfigError(str(path), "the keyring passphrase is empty")

        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        keyring = cls(path, passphrase, {}, {})
        at = _now(now)
        keyring._generate(algorithm, KeyState.ACTIVE, at, activate_at=at)
        keyring._save()
        return keyring

    @classmethod
    def load(cls, path: Path, passphrase: Secret) -> Keyring:
        """Load and decrypt a keyring.

        :raises ConfigError: a file is missing, unreadable, malformed, group or world
            accessible, or cannot be decrypted with the passphrase.
        """
        metadata = path / METADATA
        try:
            document = json.loads(metadata.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(str(metadata), "not a readable keyring") from exc

        entries = _parse_metadata(document, str(metadata))
        private: dict[str, PrivateKey] = {}
        for entry in entries.values():
            if entry.state is not KeyState.REVOKED:
                private[entry.kid] = _read_private(path, entry, passphrase)
        return cls(path, passphrase, entries, private)

    # -- using keys -------------------------------------------------------------------

    def active(self, now: float | None = None) -> SigningKey:
        """The key that signs now.

        That is the active key or, once its ``activate_at`` has passed, the newest
        pending key: every node that reads the same keyring switches at the same
        moment without a write.

        :raises NodeError: ``signing_unavailable`` if no key may sign.
        """
        at = _now(now)
        candidates = [
            e
            for e in self._entries.values()
            if e.state is KeyState.ACTIVE
            or (
                e.state is KeyState.PENDING
                and e.activate_at is not None
                and e.activate_at <= at
            )
        ]
        if not candidates:
            raise NodeError(Reason.SIGNING_UNAVAILABLE, log_reason="no_active_key")
        chosen = max(candidates, key=lambda e: (e.activate_at or e.created_at, e.kid))
        return SigningKey(chosen.kid, chosen.algorithm, self._private[chosen.kid])

    def public_keys(self) -> dict[str, PublicKeyEntry]:
        """Every key, revoked ones included, by kid."""
        return dict(self._entries)

    def registered_keys(self) -> dict[str, RegisteredKey]:
        """Keys that may verify (not revoked), in the directory's form."""
        return {
            kid: e.registered()
            for kid, e in self._entries.items()
            if e.state is not KeyState.REVOKED
        }

    def jwks(self) -> dict[str, Any]:
        """The public JWKS of pending, active and retired keys."""
        keys = [
            _public_jwk(e)
            for e in sorted(self._entries.values(), key=lambda e: e.created_at)
            if e.state is not KeyState.REVOKED
        ]
        return {"keys": keys}

    def sign_checkpoint(self, data: bytes) -> tuple[str, bytes]:
        """Sign a message log checkpoint with the active key; return (kid, signature).

        :raises NodeError: ``signing_unavailable`` if no key may sign.
        """
        key = self.active()
        return key.kid, key.sign(data)

    def verify(self, kid: str, data: bytes, signature: bytes) -> bool:
        """Whether a key of this keyring that is not revoked signed ``data``."""
        entry = self._entries.get(kid)
        if entry is None or entry.state is KeyState.REVOKED:
            return False
        return verify_raw(entry.algorithm, entry.public_key, data, signature)

    # -- changing states ----------------------------------------------------------

    def rotate(
        self,
        *,
        activate_in_s: int = 86_400,
        algorithm: str | None = None,
        now: float | None = None,
    ) -> PublicKeyEntry:
        """Create a pending key, published now, that signs from ``now + activate_in_s``.

        :raises ConfigError: ``activate_in_s`` is negative or the algorithm unknown.
        """
        if activate_in_s < 0:
            raise ConfigError(
                str(self.path), "the activation delay must not be negative"
            )
        at = _now(now)
        current = self._newest(KeyState.ACTIVE)
        chosen = algorithm or (current.algorithm if current else ED25519)
        entry = self._generate(
            chosen, KeyState.PENDING, at, activate_at=at + activate_in_s
        )
        self._save()
        return entry

    def activate(self, kid: str, *, now: float | None = None) -> PublicKeyEntry:
        """Make a pending key the active one now; the active key becomes retired.

        :raises ConfigError: the kid is unknown or the key is not pending.
        """
        entry = self._require(kid, KeyState.PENDING)
        at = _now(now)
        for other in list(self._entries.values()):
            if other.state is KeyState.ACTIVE:
                self._entries[other.kid] = replace(
                    other, state=KeyState.RETIRED, retired_at=at
                )
        self._entries[kid] = replace(entry, state=KeyState.ACTIVE, activate_at=at)
        self._save()
        return self._entries[kid]

    def retire(self, kid: str, *, now: float | None = None) -> PublicKeyEntry:
        """Stop a pending or active key from signing; it still verifies.

        :raises ConfigError: the kid is unknown, the key is retired or revoked, or it
            is the only key that can sign (activate another key first).
        """
        entry = self._require(kid, KeyState.PENDING, KeyState.ACTIVE)
        at = _now(now)
        if entry.state is KeyState.ACTIVE and self._is_only_signer(kid, at):
            raise ConfigError(
                str(self.path / METADATA),
                f"key {kid} is the only signing key; activate another key first",
            )
        self._entries[kid] = replace(entry, state=KeyState.RETIRED, retired_at=at)
        self._save()
        return self._entries[kid]

    def revoke(self, kid: str, *, now: float | None = None) -> PublicKeyEntry:
        """Withdraw a key: it leaves the JWKS, verifies nothing, its file is deleted.

        :raises ConfigError: the kid is unknown or the key is already revoked.
        """
        entry = self._require(kid, KeyState.PENDING, KeyState.ACTIVE, KeyState.RETIRED)
        self._entries[kid] = replace(
            entry, state=KeyState.REVOKED, revoked_at=_now(now)
        )
        self._private.pop(kid, None)
        self._save()
        with contextlib.suppress(FileNotFoundError):
            _key_file(self.path, kid).unlink()
        return self._entries[kid]

    # -- internals ------------------------------------------------------------------

    def _generate(
        self, algorithm: str, state: KeyState, at: int, *, activate_at: int
    ) -> PublicKeyEntry:
        private = _new_private_key(algorithm, str(self.path))
        kid = _new_kid(at)
        _write_private(self.path, kid, private, self._passphrase)
        entry = PublicKeyEntry(
            kid, algorithm, private.public_key(), state, at, activate_at
        )
        self._entries[kid] = entry
        self._private[kid] = private
        return entry

    def _require(self, kid: str, *states: KeyState) -> PublicKeyEntry:
        entry = self._entries.get(kid)
        where = str(self.path / METADATA)
        if entry is None:
            raise ConfigError(where, "no key with this kid")
        if entry.state not in states:
            raise ConfigError(
                where, f"key {kid} is {entry.state}; not allowed from there"
            )
        return entry

    def _newest(self, state: KeyState) -> PublicKeyEntry | None:
        matching = [e for e in self._entries.values() if e.state is state]
        return max(matching, key=lambda e: e.created_at) if matching else None

    def _is_only_signer(self, kid: str, at: int) -> bool:
        try:
            return self.active(now=at).kid == kid and not any(
                e.kid != kid and e.state is KeyState.ACTIVE
                for e in self._entries.values()
            )
        except NodeError:
            return True

    def _save(self) -> None:
        records = [_record(e) for e in sorted(self._entries.values(), key=_created)]
        _write_atomic(
            self.path / METADATA, _dump({"version": 1, "keys": records}), 0o600
        )
        _write_atomic(self.path / JWKS, _dump(self.jwks()), 0o644)


# -- files ----------------------------------------------------------------------


def _created(entry: PublicKeyEntry) -> tuple[int, str]:
    return entry.created_at, entry.kid


def _now(now: float | None) -> int:
    return int(time.time() if now is None else now)


def _new_kid(at: int) -> str:
    day = datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y%m%d")
    return f"mediator-{day}-{secrets.token_hex(4)}"


def _new_private_key(algorithm: str, where: str) -> PrivateKey:
    if algorithm == ED25519:
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == ECDSA_P256:
        return ec.generate_private_key(ec.SECP256R1())
    raise ConfigError(where, f"unknown key algorithm {algorithm!r}")


def _key_file(path: Path, kid: str) -> Path:
    return path / f"{kid}.key.pem"


def _write_private(path: Path, kid: str, key: PrivateKey, passphrase: Secret) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase.reveal()),
    )
    _write_atomic(_key_file(path, kid), pem, 0o600)


def _read_private(path: Path, entry: PublicKeyEntry, passphrase: Secret) -> PrivateKey:
    file = _key_file(path, entry.kid)
    try:
        mode = file.stat().st_mode
        pem = file.read_bytes()
    except OSError as exc:
        raise ConfigError(str(file), "the private key file cannot be read") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(str(file), "a private key file must have mode 0600")

    try:
        key = serialization.load_pem_private_key(pem, password=passphrase.reveal())
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            str(file), "the private key cannot be decrypted with this passphrase"
        ) from exc
    if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        raise ConfigError(str(file), "not an Ed25519 or P-256 private key")
    if _public_raw(key.public_key()) != _public_raw(entry.public_key):
        raise ConfigError(str(file), "the private key does not match keyring.json")
    return key


def _write_atomic(target: Path, data: bytes, mode: int) -> None:
    temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    _fsync_dir(target.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _dump(document: Any) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("utf-8")


# -- JSON forms -----------------------------------------------------------------


def _public_raw(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _public_jwk(entry: PublicKeyEntry) -> dict[str, Any]:
    if isinstance(entry.public_key, ed25519.Ed25519PublicKey):
        jwk = dict(OKPAlgorithm.to_jwk(entry.public_key, as_dict=True))
    else:
        jwk = dict(ECAlgorithm.to_jwk(entry.public_key, as_dict=True))
    jwk.update({"kid": entry.kid, "alg": entry.jws_algorithm, "use": "sig"})
    return jwk


def _record(entry: PublicKeyEntry) -> dict[str, Any]:
    return {
        "kid": entry.kid,
        "algorithm": entry.algorithm,
        "state": entry.state.value,
        "created_at": entry.created_at,
        "activate_at": entry.activate_at,
        "retired_at": entry.retired_at,
        "revoked_at": entry.revoked_at,
        "public_jwk": _public_jwk(entry),
    }


def _parse_metadata(document: Any, source: str) -> dict[str, PublicKeyEntry]:
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
        jwk = json.dumps(record["public_jwk"])
        public = (OKPAlgorithm if algorithm == ED25519 else ECAlgorithm).from_jwk(jwk)
        entry = PublicKeyEntry(
            kid,
            algorithm,
            public,  # type: ignore[arg-type]
            state,
            int(record["created_at"]),
            _optional_int(record.get("activate_at")),
            _optional_int(record.get("retired_at")),
            _optional_int(record.get("revoked_at")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(source, "a key record is malformed") from exc
    _check_record(entry, source)
    return entry


def _check_record(entry: PublicKeyEntry, source: str) -> None:
    if not isinstance(entry.kid, str) or not _safe_kid(entry.kid):
        raise ConfigError(source, "a key record has an unusable kid")
    if entry.algorithm not in JWS_ALGORITHMS:
        raise ConfigError(source, f"key {entry.kid}: unknown algorithm")
    expected = (
        ed25519.Ed25519PublicKey
        if entry.algorithm == ED25519
        else ec.EllipticCurvePublicKey
    )
    if not isinstance(entry.public_key, expected):
        raise ConfigError(
            source, f"key {entry.kid}: public key does not fit its algorithm"
        )
    if isinstance(entry.public_key, ec.EllipticCurvePublicKey) and not isinstance(
        entry.public_key.curve, ec.SECP256R1
    ):
        raise ConfigError(source, f"key {entry.kid}: only P-256 is supported")


def _safe_kid(kid: str) -> bool:
    # The kid names a file in the keyring directory: no separators, no dot-segments.
    return 0 < len(kid) <= 64 and all(
        c.isascii() and (c.isalnum() or c in "-_") for c in kid
    )


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)
