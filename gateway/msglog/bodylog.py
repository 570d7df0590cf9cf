"""Encrypted bodies beside the records: which services, which key, what is hashed.

:class:`BodyLog` turns the bodies of one exchange of a ``body_log: encrypted``
service into its body entries (see :mod:`gateway.msglog.bodies`), serialised as
canonical JSON and stored beside the record (same transaction, keyed by seq).
The hashed record carries ``body_log`` and ``bodies_sha256``, the SHA-256 of
those stored bytes, so a changed ciphertext shows against the sealed record.

Each node run uses one data key per period (the UTC month); its label is the
period and a random suffix, so a restart in the same month never reuses a
label. The wrapped data key is stored once per label, before the first body
encrypted under it. The node keeps only the current data key in memory.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)

from gateway.msglog.bodies import (
    BodyKeyError,
    PeriodKey,
    body_entry,
    open_body,
    unwrap_data_key,
)
from gateway.msglog.records import canonical_bytes, parse

PARTS = ("request", "response")


class BodyStore(Protocol):
    """What a log store keeps for encrypted bodies (SQLite and PostgreSQL)."""

    async def save_body_key(self, label: str, envelope: bytes) -> None:
        """Store a wrapped data key once; a label already stored is kept."""
        ...

    async def body_key(self, label: str) -> bytes | None:
        """The wrapped data key stored under ``label``."""
        ...

    async def bodies(self, seqs: list[int]) -> dict[int, bytes]:
        """The stored body entries of the records ``seqs`` (absent if none)."""
        ...


@dataclass(frozen=True, slots=True)
class SealedBodies:
    """The record fields and stored bytes of one exchange's encrypted bodies."""

    fields: dict[str, Any]
    stored: bytes


def period_of(ts: float) -> str:
    """The archive period of a time: its UTC month, ``YYYY-MM``."""
    return time.strftime("%Y-%m", time.gmtime(ts))


class BodyLog:
    """Encrypts the bodies of the services in ``caps`` (service id to size cap)."""

    def __init__(
        self,
        officers: Mapping[str, X25519PublicKey],
        caps: Mapping[str, int | None],
        store: BodyStore,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._officers = dict(officers)
        self._caps = dict(caps)
        self._store = store
        self._clock = clock
        self._key: PeriodKey | None = None
        self._stored: set[str] = set()

    def encrypts(self, service_id: object) -> bool:
        """Whether the bodies of ``service_id`` are logged encrypted."""
        return isinstance(service_id, str) and service_id in self._caps

    async def key(self) -> PeriodKey:
        """The data key of the current period, stored before it is first used.

        Raises StoreError (NodeError LOG_UNAVAILABLE) if it cannot be stored.
        """
        period = period_of(self._clock())
        key = self._key
        if key is None or not key.period.startswith(period + "."):
            label = f"{period}.{secrets.token_hex(4)}"
            key = self._key = PeriodKey.new(label, self._officers)
        if key.period not in self._stored:
            await self._store.save_body_key(key.period, canonical_bytes(key.envelope))
            self._stored.add(key.period)
        return key

    def seal(
        self,
        key: PeriodKey,
        service_id: str,
        message_id: str,
        bodies: tuple[bytes | None, bytes | None],
    ) -> SealedBodies:
        """The entries of both bodies under ``key`` and the record fields over them."""
        cap = self._caps.get(service_id)
        entries = {
            part: body_entry(
                body or b"",
                mode="encrypted",
                max_bytes=cap,
                key=key,
                message_id=message_id,
                part=part,
            )
            for part, body in zip(PARTS, bodies, strict=True)
        }
        stored = canonical_bytes({"message_id": message_id, "entries": entries})
        fields = {
            "body_log": "encrypted",
            "bodies_sha256": hashlib.sha256(stored).hexdigest(),
        }
        return SealedBodies(fields, stored)


def data_key_for(envelope: Mapping[str, Any], private: X25519PrivateKey) -> bytes:
    """The data key of ``envelope``, opened by whichever copy ``private`` opens.

    Raises BodyKeyError if no copy opens with the key.
    """
    for copy in envelope.get("wrapped", ()):
        officer = copy.get("officer") if isinstance(copy, dict) else None
        if not isinstance(officer, str):
            continue
        try:
            return unwrap_data_key(envelope, officer, private)
        except BodyKeyError:
            continue
    raise BodyKeyError("the officer's key opens no copy of the data key")


def open_stored(
    stored: bytes, envelope: Mapping[str, Any], private: X25519PrivateKey
) -> dict[str, bytes]:
    """The plaintext bodies of one stored entry set, by part.

    Parts logged as digest only (empty, or over the cap) are left out. Raises
    BodyKeyError if the key does not open them or a body does not match its digest.
    """
    try:
        value = parse(stored)
    except ValueError as exc:
        raise BodyKeyError("the stored bodies are unreadable") from exc
    message_id = value.get("message_id")
    entries = value.get("entries")
    if not isinstance(message_id, str) or not isinstance(entries, dict):
        raise BodyKeyError("the stored bodies are unreadable")
    data_key = data_key_for(envelope, private)
    return {
        part: open_body(entry, data_key, message_id=message_id, part=part)
        for part, entry in entries.items()
        if isinstance(entry, dict) and entry.get("logged") == "encrypted"
    }


def stored_label(stored: bytes) -> str | None:
    """The data key label the stored entries were encrypted under, if any."""
    try:
        entries = parse(stored).get("entries")
    except ValueError:
        return None
    if not isinstance(entries, dict):
        return None
    for entry in entries.values():
        if isinstance(entry, dict) and isinstance(entry.get("period"), str):
            return str(entry["period"])
    return None
