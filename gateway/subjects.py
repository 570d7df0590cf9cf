"""Keyed hashes of student ids, so that the message log holds no student id.

A security officer who knows a student id and has the node's key can find that
student's exchanges (``mediator log search --student``); anyone with only the log
cannot recover or confirm an id by hashing guesses.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import hashes, hmac

from gateway.errors import ConfigError
from gateway.privatefiles import create_private_folder

_KEY_FILE = "subject-hash.key"


class SubjectHasher:
    """HMAC-SHA-256 of a student id under the deployment's subject key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ConfigError(
                _KEY_FILE, "the subject hash key must be 32 bytes or more"
            )
        self._key = key

    def __repr__(self) -> str:
        return "SubjectHasher(key=**********)"

    def hash(self, student_id: str) -> str:
        mac = hmac.HMAC(self._key, hashes.SHA256())
        mac.update(student_id.strip().upper().encode("utf-8"))
        return mac.finalize().hex()

    @classmethod
    def from_state(cls, state_dir: Path, env_name: str) -> SubjectHasher:
        """The key from ``env_name`` (hex), else from the state directory.

        A new deployment gets a random key written with mode 0600.
        """
        from_env = os.environ.get(env_name)
        if from_env:
            try:
                return cls(bytes.fromhex(from_env))
            except ValueError as exc:
                raise ConfigError(env_name, "must be hex") from exc
        path = state_dir / _KEY_FILE
        if not path.exists():
            create_private_folder(state_dir)
            _create_key(path)
        if path.stat().st_mode & 0o077:
            raise ConfigError(str(path), "must not be readable by group or others")
        return cls(bytes.fromhex(path.read_text().strip()))


def _create_key(path: Path) -> None:
    """Write a new random key at ``path`` unless another process got there first.

    The workers of one node start together and may all find no key: each writes
    its own to a file of its own, then links it to ``path``, which appears
    complete or not at all. The first link wins and the others read that key, so
    every worker hashes with the same one and none reads a half-written file.
    """
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(temp, path)
    finally:
        temp.unlink()
