"""A keyring directory loaded for use: the key that signs now, the keys that verify.

:class:`KeyringReader` reads ``keyring.json`` and the private keys it names (the
directory and the states of its keys are described in :mod:`gateway.keyring`)
and answers from one state held in memory: the key that signs, with the rotation
schedule applied (:func:`~gateway.keytypes.effective`), the keys that verify and
the public JWKS. :meth:`KeyringReader.reload` swaps that whole state in one
assignment when ``keyring.json`` changed, so everything that holds the object
(pipeline, message log) sees the new keys at once.

It never writes the directory: :class:`gateway.keyring.Keyring` adds creating a
keyring and changing the states of its keys, under the directory's lock.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from gateway import keyfiles
from gateway.directory import RegisteredKey
from gateway.errors import ConfigError, NodeError, Reason
from gateway.hsm import HsmToken, entry_key
from gateway.keyfiles import locked
from gateway.keytypes import (
    DEFAULT_RETAIN_S,
    KeyState,
    PublicKeyEntry,
    Signer,
    SigningKey,
    effective,
    next_due,
    parse_metadata,
    verify_raw,
)
from gateway.secrets import Secret

__all__ = ["METADATA", "KeyringReader", "by_creation", "whole_seconds"]

METADATA = "keyring.json"


@dataclass(frozen=True, slots=True)
class _View:
    """Everything a keyring knows at one moment; replaced whole, never changed."""

    entries: dict[str, PublicKeyEntry]
    private: dict[str, Signer]
    version: str


class KeyringReader:
    """The keys of one node, loaded from a keyring directory."""

    def __init__(
        self,
        path: Path,
        passphrase: Secret,
        entries: dict[str, PublicKeyEntry],
        private: dict[str, Signer],
        *,
        version: str = "",
        retain_s: int = DEFAULT_RETAIN_S,
        hsm: HsmToken | None = None,
    ) -> None:
        self.path = path
        self.retain_s = retain_s
        #: The PKCS#11 token of keys with an ``hsm_label`` (None: no HSM).
        self.hsm = hsm
        self._passphrase = passphrase
        self._view = _View(entries, private, version)
        #: The last answer of :meth:`active`: (view, from, until, signer). The
        #: schedule gives the same signer until a pending key falls due.
        self._signing: tuple[_View, int, float, Signer] | None = None

    # -- loading --------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        path: Path,
        passphrase: Secret,
        *,
        retain_s: int = DEFAULT_RETAIN_S,
        hsm: HsmToken | None = None,
    ) -> Self:
        """Load and decrypt a keyring; keys with an ``hsm_label`` are found in ``hsm``.

        :raises ConfigError: the directory is group or world writable, a file is
            missing, unreadable, malformed, group or world accessible, or cannot be
            decrypted with the passphrase; a key is in an HSM and no token is given,
            or the token does not hold it or holds another public key.
        """
        keyfiles.check_directory(path)
        keyring = cls(path, passphrase, {}, {}, retain_s=retain_s, hsm=hsm)
        keyring.reload()
        return keyring

    def reload(self) -> bool:
        """Read ``keyring.json`` again; return whether anything changed.

        The new state replaces the old one in one assignment; if reading fails the
        old state stays.

        :raises ConfigError: as :meth:`load`.
        """
        with locked(self.path, shared=True):
            return self._refresh()

    @property
    def version(self) -> str:
        """SHA-256 of the ``keyring.json`` this state was read from."""
        return self._view.version

    # -- using keys -------------------------------------------------------------------

    def active(self, now: float | None = None) -> Signer:
        """The key that signs now (the schedule applied, see :func:`effective`).

        :raises NodeError: ``signing_unavailable`` if no key may sign.
        """
        view, at = self._view, whole_seconds(now)
        cached = self._signing
        if cached is not None and cached[0] is view and cached[1] <= at < cached[2]:
            return cached[3]
        for entry in effective(view.entries, at, self.retain_s).values():
            if entry.state is KeyState.ACTIVE:
                signer = view.private[entry.kid]
                self._signing = (view, at, next_due(view.entries, at), signer)
                return signer
        raise NodeError(Reason.SIGNING_UNAVAILABLE, log_reason="no_active_key")

    @property
    def key_id(self) -> str:
        """The kid of the key that signs now, or "" if none may sign."""
        try:
            return self.active().kid
        except NodeError:
            return ""

    def public_keys(self, now: float | None = None) -> dict[str, PublicKeyEntry]:
        """Every key, revoked ones included, by kid, in its state at ``now``."""
        return effective(self._view.entries, whole_seconds(now), self.retain_s)

    def registered_keys(self, now: float | None = None) -> dict[str, RegisteredKey]:
        """Keys that verify at ``now``, in the directory's form."""
        at = whole_seconds(now)
        return {
            kid: e.registered()
            for kid, e in self.public_keys(at).items()
            if e.verifies(at)
        }

    def jwks(self, now: float | None = None) -> dict[str, Any]:
        """The public JWKS of pending, active and retired keys that still verify."""
        at = whole_seconds(now)
        entries = sorted(self.public_keys(at).values(), key=by_creation)
        return {
            "keys": [
                keyfiles.public_jwk(e.kid, e.public_key)
                for e in entries
                if e.verifies(at)
            ]
        }

    def sign_checkpoint(self, data: bytes) -> tuple[str, bytes]:
        """Sign a message log checkpoint with the active key; return (kid, signature).

        :raises NodeError: ``signing_unavailable`` if no key may sign.
        """
        key = self.active()
        return key.kid, key.sign(data)

    def verify(
        self, kid: str, data: bytes, signature: bytes, *, now: float | None = None
    ) -> bool:
        """Whether a key of this keyring that verifies at ``now`` signed ``data``."""
        at = whole_seconds(now)
        entry = self.public_keys(at).get(kid)
        if entry is None or not entry.verifies(at):
            return False
        return verify_raw(entry.algorithm, entry.public_key, data, signature)

    def close(self) -> None:
        """Close the HSM session, if any; keys in the token stop signing."""
        if self.hsm is not None:
            self.hsm.close()

    # -- internals ------------------------------------------------------------------

    def _refresh(self) -> bool:
        metadata = self.path / METADATA
        try:
            data = metadata.read_bytes()
            document = json.loads(data)
        except (OSError, ValueError) as exc:
            raise ConfigError(str(metadata), "not a readable keyring") from exc
        version = hashlib.sha256(data).hexdigest()
        if version == self._view.version:
            return False

        entries = parse_metadata(document, str(metadata))
        known = self._view.private
        private = {
            e.kid: known.get(e.kid) or self._signer(e)
            for e in entries.values()
            if e.state is not KeyState.REVOKED
        }
        self._adopt(entries, private, version)
        return True

    def _adopt(
        self,
        entries: dict[str, PublicKeyEntry],
        private: dict[str, Signer],
        version: str,
    ) -> None:
        """Replace the whole state in one assignment (read, or just written)."""
        self._view = _View(entries, private, version)

    def _signer(self, entry: PublicKeyEntry) -> Signer:
        """The private half of ``entry``: its PEM file, or its key in the token."""
        if entry.hsm_label is None:
            key = keyfiles.read_private(
                self.path, entry.kid, entry.public_key, self._passphrase
            )
            return SigningKey(entry.kid, entry.algorithm, key)
        return entry_key(self.hsm, entry, str(self.path / METADATA))


def by_creation(entry: PublicKeyEntry) -> tuple[int, str]:
    """The order of keys in ``keyring.json`` and the JWKS: oldest first, then kid."""
    return entry.created_at, entry.kid


def whole_seconds(now: float | None) -> int:
    """``now``, or the clock's time if None, in whole seconds."""
    return int(time.time() if now is None else now)
