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

A running node holds one :class:`Keyring` object; :meth:`Keyring.reload` swaps
its whole state in one assignment when ``keyring.json`` changed, so everything
that holds the object (pipeline, message log) sees the new keys at once.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gateway import keyfiles
from gateway.audit import AuditLog, default_actor
from gateway.directory import RegisteredKey
from gateway.errors import ConfigError, NodeError, Reason
from gateway.hsm import HsmToken, entry_key, new_key
from gateway.keyfiles import (
    ECDSA_P256,
    ED25519,
    JWS_ALGORITHMS,
    PrivateKey,
    PublicKey,
    locked,
)
from gateway.keytypes import (
    DEFAULT_RETAIN_S,
    KeyState,
    PublicKeyEntry,
    Signer,
    SigningKey,
    effective,
    next_due,
    parse_metadata,
    to_record,
    verify_raw,
)
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

METADATA = "keyring.json"
JWKS = "jwks.json"
#: Default publication lead time of a rotated key.
DEFAULT_LEAD_S = 600
SCHEDULE_ACTOR = "keyring:schedule"


@dataclass(frozen=True, slots=True)
class _View:
    """Everything a keyring knows at one moment; replaced whole, never changed."""

    entries: dict[str, PublicKeyEntry]
    private: dict[str, Signer]
    version: str


class Keyring:
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
        self.path = path
        self.retain_s = retain_s
        #: The PKCS#11 token of keys with an ``hsm_label`` (None: no HSM).
        self.hsm = hsm
        self.audit = audit or AuditLog.in_state_dir(path.parent)
        self._passphrase = passphrase
        self._view = _View(entries, private, version)
        self._scheduled: list[tuple[str, str]] = []
        #: The last answer of :meth:`active`: (view, from, until, signer). The
        #: schedule gives the same signer until a pending key falls due.
        self._signing: tuple[_View, int, float, Signer] | None = None

    # -- creating and loading -------------------------------------------------------

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

        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        algorithm = algorithm or (ED25519 if hsm is None else ECDSA_P256)
        keyring = cls(path, passphrase, {}, {}, hsm=hsm)
        at = _now(now)
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

    @classmethod
    def load(
        cls,
        path: Path,
        passphrase: Secret,
        *,
        retain_s: int = DEFAULT_RETAIN_S,
        hsm: HsmToken | None = None,
    ) -> Keyring:
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
        view, at = self._view, _now(now)
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
        return effective(self._view.entries, _now(now), self.retain_s)

    def registered_keys(self, now: float | None = None) -> dict[str, RegisteredKey]:
        """Keys that verify at ``now``, in the directory's form."""
        at = _now(now)
        return {
            kid: e.registered()
            for kid, e in self.public_keys(at).items()
            if e.verifies(at)
        }

    def jwks(self, now: float | None = None) -> dict[str, Any]:
        """The public JWKS of pending, active and retired keys that still verify."""
        at = _now(now)
        entries = sorted(self.public_keys(at).values(), key=_created)
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
        at = _now(now)
        entry = self.public_keys(at).get(kid)
        if entry is None or not entry.verifies(at):
            return False
        return verify_raw(entry.algorithm, entry.public_key, data, signature)

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
        self._view = _View(entries, private, version)
        return True

    def _signer(self, entry: PublicKeyEntry) -> Signer:
        """The private half of ``entry``: its PEM file, or its key in the token."""
        if entry.hsm_label is None:
            key = keyfiles.read_private(
                self.path, entry.kid, entry.public_key, self._passphrase
            )
            return SigningKey(entry.kid, entry.algorithm, key)
        return entry_key(self.hsm, entry, str(self.path / METADATA))

    def _settled(
        self, now: float | None
    ) -> tuple[int, dict[str, PublicKeyEntry], dict[str, Signer]]:
        """Under the lock: the newest state on disk with the schedule written in."""
        self._refresh()
        at = _now(now)
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
        records = [to_record(e) for e in sorted(entries.values(), key=_created)]
        data = keyfiles.dump({"version": 1, "keys": records})
        keyfiles.write_atomic(self.path / METADATA, data, 0o600)
        version = hashlib.sha256(data).hexdigest()
        self._view = _View(dict(entries), dict(private), version)
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


def _created(entry: PublicKeyEntry) -> tuple[int, str]:
    return entry.created_at, entry.kid


def _now(now: float | None) -> int:
    return int(time.time() if now is None else now)


def _new_kid(at: int) -> str:
    day = datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y%m%d")
    return f"mediator-{day}-{secrets.token_hex(4)}"
