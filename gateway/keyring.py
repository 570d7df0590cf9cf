"""The node's signing keys and their states.

A keyring is a directory::

    keyring.json        metadata of every key: kid, algorithm, state and times,
                        with the public key as a JWK
    KID.key.pem         one private key per key, encrypted PKCS#8, mode 0600
                        (none for a key whose record names an ``hsm_label``: its
                        private half is in the PKCS#11 token, see gateway.hsm)
    jwks.json           public keys of pending, active and retired keys
    .lock               taken by every writer (fcntl), so the CLI and nodes never
                        write at once

States move one way::

    pending ──▶ active ──▶ retired
       │          │           │
       └──────────┴───────────┴──▶ revoked

A pending key is published in ``jwks.json`` from the moment it is created, so that
providers know it before it signs; it signs from its ``activate_at`` time on (or
when activated by hand), and the key it replaces becomes retired at that moment.
Every reader applies the schedule itself (:func:`effective`), so nodes switch at
the same moment without a write; the next change written settles it. A retired
key still verifies what it signed until its ``verify_until`` time; a revoked key
verifies nothing and its private key file is deleted. Every change is recorded in
the admin audit log (:mod:`gateway.audit`) with who made it and when.

A running node holds one :class:`Keyring` object. Loading it and using its keys
(the key that signs now, the keys that verify, the JWKS, reloading a changed
``keyring.json``) is :class:`~gateway.keyreader.KeyringReader`, which
:class:`Keyring` extends with creating a keyring and changing its keys' states.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import secrets
from dataclasses import replace
from pathlib import Path
from typing import Any

from gateway import keyfiles
from gateway.audit import AuditLog, default_actor
from gateway.errors import ConfigError
from gateway.hsm import HsmToken, new_key
from gateway.keyfiles import (
    ECDSA_P256,
    ED25519,
    JWS_ALGORITHMS,
    PrivateKey,
    PublicKey,
    locked,
)
from gateway.keyreader import METADATA, KeyringReader, by_creation, whole_seconds
from gateway.keytypes import (
    DEFAULT_RETAIN_S,
    KeyState,
    PublicKeyEntry,
    Signer,
    SigningKey,
    effective,
    to_record,
    verify_raw,
)
from gateway.privatefiles import create_private_folder
from gateway.secrets import Secret

__all__ = [
    "DEFAULT_RETAIN_S",
    "ECDSA_P256",
    "ED25519",
    "JWS_ALGORITHMS",
    "KeyState",
    "Keyring",
    "PrivateKey",
    "PublicKey",
    "PublicKeyEntry",
    "Signer",
    "SigningKey",
    "effective",
    "verify_raw",
]

JWKS = "jwks.json"
#: Default publication lead time of a rotated key.
DEFAULT_LEAD_S = 600
SCHEDULE_ACTOR = "keyring:schedule"


class Keyring(KeyringReader):
    """The keys of one node, loaded from and saved to a keyring directory."""

    def __init__(
        self,
        path: Path,
        passphrase: Secret,
        entries: dict[str, PublicKeyEntry],
        private: dict[str, Signer],
        *,
        version: str = "",
        retain_s: int = DEFAULT_RETAIN_S,
        audit: AuditLog | None = None,
        hsm: HsmToken | None = None,
    ) -> None:
        super().__init__(
            path,
            passphrase,
            entries,
            private,
            version=version,
            retain_s=retain_s,
            hsm=hsm,
        )
        self.audit = audit or AuditLog.in_state_dir(path.parent)
        self._scheduled: list[tuple[str, str]] = []

    # -- creating -------------------------------------------------------------------

    @classmethod
    def init(
        cls,
        path: Path,
        passphrase: Secret,
        algorithm: str | None = None,
        *,
        now: float | None = None,
        actor: str | None = None,
        hsm: HsmToken | None = None,
    ) -> Keyring:
        """Create a keyring with one active key (generated in ``hsm`` if given).

        The algorithm is Ed25519 by default, ECDSA P-256 in an HSM.

        :raises ConfigError: the keyring already exists, the passphrase is empty,
            the algorithm is not ``ed25519`` or ``ecdsa-p256-sha256`` (only the
            latter in an HSM), or the token cannot generate the key.
        """
        if (path / METADATA).exists():
            raise ConfigError(str(path / METADATA), "a keyring already exists here")
        if not passphrase:
            raise ConfigError(str(path), "the keyring passphrase is empty")

        create_private_folder(path)
        algorithm = algorithm or (ED25519 if hsm is None else ECDSA_P256)
        keyring = cls(path, passphrase, {}, {}, hsm=hsm)
        at = whole_seconds(now)
        with locked(path):
            entries: dict[str, PublicKeyEntry] = {}
            private: dict[str, Signer] = {}
            entry = keyring._generate(
                entries,
                private,
                algorithm,
                KeyState.ACTIVE,
                at,
                activate_at=at,
                in_hsm=hsm is not None,
            )
            keyring._commit(entries, private, at)
        keyring._record(actor, "keys.init", entry.kid, algorithm=algorithm)
        return keyring

    # -- changing states ----------------------------------------------------------

    def rotate(
        self,
        *,
        activate_in_s: int = DEFAULT_LEAD_S,
        algorithm: str | None = None,
        now: float | None = None,
        actor: str | None = None,
        in_hsm: bool = False,
    ) -> PublicKeyEntry:
        """Create a pending key, published now, that signs from ``now + activate_in_s``.

        The key signing now is retired when the new one takes over. With
        ``in_hsm`` the key pair is generated in the keyring's token (ECDSA P-256).

        :raises ConfigError: ``activate_in_s`` is negative, the algorithm unknown,
            or ``in_hsm`` without a token, with Ed25519, or refused by the token.
        """
        if activate_in_s < 0:
            raise ConfigError(
                str(self.path), "the activation delay must not be negative"
            )
        with locked(self.path):
            at, entries, private = self._settled(now)
            current = next(
                (e for e in entries.values() if e.state is KeyState.ACTIVE), None
            )
            chosen = algorithm or (current.algorithm if current else ED25519)
            if in_hsm and algorithm is None:
                chosen = ECDSA_P256
            entry = self._generate(
                entries,
                private,
                chosen,
                KeyState.PENDING,
                at,
                activate_at=at + activate_in_s,
                in_hsm=in_hsm,
            )
            self._commit(entries, private, at)
        self._record(
            actor,
            "keys.rotate",
            entry.kid,
            algorithm=chosen,
            activate_at=entry.activate_at,
            replaces=current.kid if current else None,
        )
        return entry

    def activate(
        self, kid: str, *, now: float | None = None, actor: str | None = None
    ) -> PublicKeyEntry:
        """Make a pending key the active one now; the active key becomes retired.

        Activating the key that already signs changes nothing.

        :raises ConfigError: the kid is unknown or the key is retired or revoked.
        """
        with locked(self.path):
            at, entries, private = self._settled(now)
            entry = self._require(entries, kid, KeyState.PENDING, KeyState.ACTIVE)
            for other in list(entries.values()):
                if other.state is KeyState.ACTIVE:
                    entries[other.kid] = replace(
                        other,
                        state=KeyState.RETIRED,
                        retired_at=at,
                        verify_until=at + self.retain_s,
                    )
            entries[kid] = replace(entry, state=KeyState.ACTIVE, activate_at=at)
            self._commit(entries, private, at)
        self._record(actor, "keys.activate", kid)
        return entries[kid]

    def retire(
        self, kid: str, *, now: float | None = None, actor: str | None = None
    ) -> PublicKeyEntry:
        """Stop a pending or active key from signing; it still verifies.

        :raises ConfigError: the kid is unknown, the key is retired or revoked, or it
            is the only key that can sign (activate another key first).
        """
        with locked(self.path):
            at, entries, private = self._settled(now)
            entry = self._require(entries, kid, KeyState.PENDING, KeyState.ACTIVE)
            if entry.state is KeyState.ACTIVE:
                raise ConfigError(
                    str(self.path / METADATA),
                    f"key {kid} is the only signing key; activate another key first",
                )
            entries[kid] = replace(
                entry,
                state=KeyState.RETIRED,
                retired_at=at,
                verify_until=at + self.retain_s,
            )
            self._commit(entries, private, at)
        self._record(actor, "keys.retire", kid)
        return entries[kid]

    def revoke(
        self, kid: str, *, now: float | None = None, actor: str | None = None
    ) -> PublicKeyEntry:
        """Withdraw a key: it leaves the JWKS, verifies nothing, its file is deleted.

        :raises ConfigError: the kid is unknown or the key is already revoked.
        """
        states = (KeyState.PENDING, KeyState.ACTIVE, KeyState.RETIRED)
        with locked(self.path):
            at, entries, private = self._settled(now)
            entry = self._require(entries, kid, *states)
            entries[kid] = replace(entry, state=KeyState.REVOKED, revoked_at=at)
            private.pop(kid, None)
            self._commit(entries, private, at)
            with contextlib.suppress(FileNotFoundError):
                keyfiles.key_file(self.path, kid).unlink()
            if entry.hsm_label is not None and self.hsm is not None:
                self.hsm.destroy(entry.hsm_label)
        self._record(actor, "keys.revoke", kid, revoked_at=at)
        return entries[kid]

    # -- internals ------------------------------------------------------------------

    def _settled(
        self, now: float | None
    ) -> tuple[int, dict[str, PublicKeyEntry], dict[str, Signer]]:
        """Under the lock: the newest state on disk with the schedule written in."""
        self._refresh()
        at = whole_seconds(now)
        before = self._view.entries
        entries = effective(before, at, self.retain_s)
        # Audited by _commit, so a change that is refused leaves no entry.
        self._scheduled = [
            (f"keys.{_verb(entry.state)}", kid)
            for kid, entry in entries.items()
            if entry.state is not before[kid].state
        ]
        return at, entries, dict(self._view.private)

    def _generate(
        self,
        entries: dict[str, PublicKeyEntry],
        private: dict[str, Signer],
        algorithm: str,
        state: KeyState,
        at: int,
        *,
        activate_at: int,
        in_hsm: bool = False,
    ) -> PublicKeyEntry:
        kid = _new_kid(at)
        signer: Signer
        if in_hsm:
            signer = new_key(self.hsm, kid, algorithm, str(self.path / METADATA))
        else:
            key = keyfiles.new_private_key(algorithm, str(self.path))
            keyfiles.write_private(self.path, kid, key, self._passphrase)
            signer = SigningKey(kid, algorithm, key)
        entry = PublicKeyEntry(
            kid,
            algorithm,
            signer.public_key(),
            state,
            at,
            activate_at,
            hsm_label=kid if in_hsm else None,
        )
        entries[kid] = entry
        private[kid] = signer
        return entry

    def _require(
        self, entries: dict[str, PublicKeyEntry], kid: str, *states: KeyState
    ) -> PublicKeyEntry:
        entry = entries.get(kid)
        where = str(self.path / METADATA)
        if entry is None:
            raise ConfigError(where, "no key with this kid")
        if entry.state not in states:
            raise ConfigError(
                where, f"key {kid} is {entry.state}; not allowed from there"
            )
        return entry

    def _commit(
        self,
        entries: dict[str, PublicKeyEntry],
        private: dict[str, Signer],
        at: int,
    ) -> None:
        records = [to_record(e) for e in sorted(entries.values(), key=by_creation)]
        data = keyfiles.dump({"version": 1, "keys": records})
        keyfiles.write_atomic(self.path / METADATA, data, 0o600)
        version = hashlib.sha256(data).hexdigest()
        self._adopt(dict(entries), dict(private), version)
        keyfiles.write_atomic(self.path / JWKS, keyfiles.dump(self.jwks(at)), 0o644)
        for action, kid in self._scheduled:
            self._record(SCHEDULE_ACTOR, action, kid)
        self._scheduled = []

    def _record(self, actor: str | None, action: str, kid: str, **details: Any) -> None:
        self.audit.append(actor or default_actor(), action, kid, details)


def _verb(state: KeyState) -> str:
    return {KeyState.ACTIVE: "activate", KeyState.RETIRED: "retire"}.get(
        state, str(state)
    )


def _new_kid(at: int) -> str:
    day = datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y%m%d")
    return f"mediator-{day}-{secrets.token_hex(4)}"
