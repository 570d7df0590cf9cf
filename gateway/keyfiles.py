"""Files of a keyring directory: atomic writes, locking, modes and JSON forms.

Every write goes to a temporary file that is then renamed over the target, so a
reader sees the old or the new document, never half of one. Writers (the CLI and
nodes) serialise with an exclusive ``fcntl`` lock on ``.lock`` in the directory;
readers that must see keyring.json and the key files agree take a shared lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm
from jwt.exceptions import PyJWTError

from gateway.errors import ConfigError
from gateway.secrets import Secret

ED25519 = "ed25519"
ECDSA_P256 = "ecdsa-p256-sha256"

#: RFC 9421 algorithm names and the JWS ``alg`` of the same key type.
JWS_ALGORITHMS = {ED25519: "EdDSA", ECDSA_P256: "ES256"}

LOCK = ".lock"

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey


@contextlib.contextmanager
def locked(path: Path, *, shared: bool = False) -> Iterator[None]:
    """Hold the keyring directory's lock (exclusive unless ``shared``).

    :raises ConfigError: the lock file cannot be opened.
    """
    try:
        fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise ConfigError(
            str(path / LOCK), "the keyring lock cannot be opened"
        ) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def check_directory(path: Path) -> None:
    """Refuse a keyring directory that others may write to.

    :raises ConfigError: the directory is missing, not a directory, or group or
        world writable.
    """
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise ConfigError(str(path), "the keyring directory cannot be read") from exc
    if not stat.S_ISDIR(mode):
        raise ConfigError(str(path), "the keyring path is not a directory")
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(
            str(path), "the keyring directory must not be group or world writable"
        )


def new_private_key(algorithm: str, where: str) -> PrivateKey:
    """A fresh private key.

    :raises ConfigError: the algorithm is not Ed25519 or ECDSA P-256.
    """
    if algorithm == ED25519:
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == ECDSA_P256:
        return ec.generate_private_key(ec.SECP256R1())
    raise ConfigError(where, f"unknown key algorithm {algorithm!r}")


def key_file(path: Path, kid: str) -> Path:
    return path / f"{kid}.key.pem"


def write_private(path: Path, kid: str, key: PrivateKey, passphrase: Secret) -> None:
    """Write ``key`` as encrypted PKCS#8 with mode 0600."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase.reveal()),
    )
    write_atomic(key_file(path, kid), pem, 0o600)


def read_private(
    path: Path, kid: str, public: PublicKey, passphrase: Secret
) -> PrivateKey:
    """Read and decrypt the private key of ``kid`` and check it fits ``public``.

    :raises ConfigError: the file is unreadable, group or world accessible, cannot
        be decrypted, is of another type, or does not match the public key.
    """
    file = key_file(path, kid)
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
    if public_raw(key.public_key()) != public_raw(public):
        raise ConfigError(str(file), "the private key does not match keyring.json")
    return key


def write_atomic(target: Path, data: bytes, mode: int) -> None:
    """Replace ``target`` with ``data`` in one rename, flushed to disk."""
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


def dump(document: Any) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("utf-8")


def public_raw(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_jwk(kid: str, public_key: PublicKey) -> dict[str, Any]:
    """The public JWK of a key with its ``kid``, ``alg`` and ``use``."""
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        jwk = dict(OKPAlgorithm.to_jwk(public_key, as_dict=True))
        alg = "EdDSA"
    else:
        jwk = dict(ECAlgorithm.to_jwk(public_key, as_dict=True))
        alg = "ES256"
    jwk.update({"kid": kid, "alg": alg, "use": "sig"})
    return jwk


def public_from_jwk(algorithm: str, jwk: Any) -> PublicKey:
    """The public key of a JWK record.

    :raises ValueError: the JWK is malformed.
    :raises TypeError: the JWK is not an object, or its key does not fit the
        algorithm or is not P-256.
    """
    if not isinstance(jwk, dict):
        raise TypeError("a JWK must be an object")
    parser = OKPAlgorithm if algorithm == ED25519 else ECAlgorithm
    try:
        key = parser.from_jwk(json.dumps(jwk))
    except PyJWTError as exc:
        # PyJWT raises its own error, which callers that catch ValueError miss.
        raise ValueError("the JWK is malformed") from exc
    expected = (
        ed25519.Ed25519PublicKey if algorithm == ED25519 else ec.EllipticCurvePublicKey
    )
    if not isinstance(key, expected):
        raise TypeError("public key does not fit its algorithm")
    if isinstance(key, ec.EllipticCurvePublicKey) and not isinstance(
        key.curve, ec.SECP256R1
    ):
        raise TypeError("only P-256 is supported")
    return key


def safe_kid(kid: Any) -> bool:
    """Whether a kid may name a file here: no separators, no dot-segments."""
    return (
        isinstance(kid, str)
        and 0 < len(kid) <= 64
        and all(c.isascii() and (c.isalnum() or c in "-_") for c in kid)
    )
