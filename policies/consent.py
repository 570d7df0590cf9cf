"""The consent store: who granted which client which purpose for which student.

A consent covers one subject, one client and one purpose at one version, inside
its validity window, until it is revoked; for a minor, only a guardian may grant.
Records and their hash-chained revisions live in SQLite (WAL, full sync) through
:mod:`policies.consentdb`; with a signer (the node's keyring) every revision is
also signed.

Writes and history reads run in a worker thread, one at a time on one connection. The
lookup that every consent-based exchange makes (:meth:`ConsentStore.find_active`) is
one indexed query on a second, read-only connection, run directly on the event loop:
a worker-thread hop costs several times the query itself. There is no cache: the
store is read on every exchange, so a revocation committed by this node's writer is
seen by the very next request (WAL readers see every committed transaction). The
SQLite store belongs to one node; several nodes share
:class:`policies.consentpg.PostgresConsentStore`, which has the same interface
(:class:`ConsentBackend`) and is chosen by :func:`open_consent_store`.
A failing database surfaces as :class:`~gateway.errors.NodeError`: the exchange
fails closed.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

import anyio

from gateway.errors import NodeError, Reason
from gateway.identifiers import ClientId
from policies import consentdb
from policies.consentdb import grant_many_sync
from policies.consentgrant import GrantApi
from policies.consentpg import PostgresConsentStore
from policies.consentrecords import (
    ConsentError,
    ConsentRecord,
    ConsentRevision,
    GrantedBy,
    is_student_id,
)
from policies.consentsign import RevisionSigner
from policies.purposes import Purpose

__all__ = [
    "ConsentBackend",
    "ConsentError",
    "ConsentRecord",
    "ConsentRevision",
    "ConsentStore",
    "GrantedBy",
    "grant_many_sync",
    "is_student_id",
    "open_consent_store",
]

_T = TypeVar("_T")


class ConsentBackend(Protocol):
    """What a node needs of a consent store; SQLite and PostgreSQL stores are one."""

    @property
    def signed(self) -> bool: ...

    async def grant(
        self,
        *,
        subject: str,
        client: ClientId,
        purpose: Purpose,
        granted_by_role: str,
        granted_by_name: str,
        subject_is_minor: bool,
        valid_from: float,
        valid_until: float,
        actor: str,
    ) -> ConsentRecord: ...

    async def revoke(
        self, consent_id: str, *, actor: str, at: float | None = None
    ) -> ConsentRecord: ...

    async def find_active(
        self, subject: str, client: ClientId, purpose: Purpose, at: float
    ) -> ConsentRecord | None: ...

    async def get(self, consent_id: str) -> ConsentRecord | None: ...

    async def list_for_subject(self, subject: str) -> list[ConsentRecord]: ...

    async def history(self, consent_id: str) -> list[ConsentRevision]: ...

    async def verify_history(self, consent_id: str) -> bool: ...

    async def close(self) -> None: ...


async def open_consent_store(
    store: Literal["sqlite", "postgres"],
    *,
    sqlite_path: Path,
    postgres_dsn: str | None = None,
    postgres_schema: str | None = None,
    signer: RevisionSigner | None = None,
) -> ConsentBackend:
    """The SQLite store at ``sqlite_path``, or the shared PostgreSQL store.

    Raises ConsentError if ``postgres`` is chosen without a DSN or with a bad schema
    name, and NodeError if the database cannot be opened.
    """
    if store == "sqlite":
        return await ConsentStore.open(sqlite_path, signer=signer)
    if not postgres_dsn:
        raise ConsentError("a PostgreSQL consent store needs a DSN")
    return await PostgresConsentStore.open(
        postgres_dsn, schema=postgres_schema, signer=signer
    )


class ConsentStore(GrantApi):
    """Consent records in SQLite; open with :meth:`open`, end with :meth:`close`."""

    def __init__(
        self,
        connection: sqlite3.Connection,
        clock: Callable[[], float],
        *,
        reader: sqlite3.Connection | None = None,
        signer: RevisionSigner | None = None,
    ):
        self._connection = connection
        self._reader = reader
        self._clock = clock
        self._signer = signer
        self._limiter = anyio.CapacityLimiter(1)

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        clock: Callable[[], float] = time.time,
        signer: RevisionSigner | None = None,
    ) -> ConsentStore:
        """Open (and create) the store at ``path``; raise NodeError if it cannot.

        With ``signer``, every new revision is signed and :meth:`verify_history`
        checks the signatures too.
        """
        try:
            connection = await anyio.to_thread.run_sync(consentdb.connect, path)
            reader = consentdb.connect_reader(path)
        except sqlite3.Error as exc:
            raise NodeError(Reason.INTERNAL_ERROR, log_reason="consent_store") from exc
        return cls(connection, clock, reader=reader, signer=signer)

    async def _grant(self, grant: dict[str, Any]) -> ConsentRecord:
        return await self._run(
            partial(
                consentdb.grant_one, self._connection, self._clock, grant, self._signer
            )
        )

    async def revoke(
        self, consent_id: str, *, actor: str, at: float | None = None
    ) -> ConsentRecord:
        """Revoke a consent now; raise ConsentError if unknown or already revoked."""
        when = self._clock() if at is None else at
        return await self._run(
            partial(
                consentdb.revoke,
                self._connection,
                consent_id,
                actor,
                when,
                self._signer,
            )
        )

    async def find_active(
        self, subject: str, client: ClientId, purpose: Purpose, at: float
    ) -> ConsentRecord | None:
        """The active consent covering this exchange at ``at``, if any.

        One indexed read on the reader connection, without a thread hop; raises
        NodeError if the database cannot be read.
        """
        key = (subject, str(client), purpose.id, purpose.version, at, at)
        if self._reader is None:
            return await self._run(
                partial(consentdb.find_active, self._connection, key)
            )
        try:
            return consentdb.find_active(self._reader, key)
        except sqlite3.Error as exc:
            raise NodeError(Reason.INTERNAL_ERROR, log_reason="consent_store") from exc

    async def get(self, consent_id: str) -> ConsentRecord | None:
        return await self._run(partial(consentdb.get, self._connection, consent_id))

    async def list_for_subject(self, subject: str) -> list[ConsentRecord]:
        """Every consent of a student, newest window first."""
        return await self._run(
            partial(consentdb.list_for_subject, self._connection, subject)
        )

    async def history(self, consent_id: str) -> list[ConsentRevision]:
        """The revisions of a consent, oldest first; empty if the id is unknown."""
        return await self._run(partial(consentdb.history, self._connection, consent_id))

    async def verify_history(self, consent_id: str) -> bool:
        """True if the hash chain is intact and matches the current record.

        A store opened with a signer also requires a valid signature on every
        revision.
        """
        return await self._run(
            partial(
                consentdb.verify_history, self._connection, consent_id, self._signer
            )
        )

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        await self._run(self._connection.close)

    async def _run(self, call: Callable[[], _T]) -> _T:
        try:
            return await anyio.to_thread.run_sync(call, limiter=self._limiter)
        except sqlite3.Error as exc:
            raise NodeError(Reason.INTERNAL_ERROR, log_reason="consent_store") from exc
