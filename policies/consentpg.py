"""The consent store in PostgreSQL (asyncpg): one store shared by several nodes.

The records, the hash-chained revisions and their node signatures are those of the
SQLite store (:mod:`policies.consentdb` builds and checks them); only the storage
differs. A revocation committed through any node is seen by every node's very next
lookup, because there is no cache: :meth:`PostgresConsentStore.find_active` is one
prepared query on a pooled connection (one round trip), answered from a partial
index over the active consents.

A revocation locks the consent's row (``SELECT ... FOR UPDATE``), so two nodes that
revoke the same consent at once append exactly one revision; the revision table's
primary key is the last guard of the chain's order. ``schema`` (optional) keeps the
tables in a schema of their own. A failing database surfaces as
:class:`~gateway.errors.NodeError` (the exchange fails closed); the DSN is never put
in an error or a log line.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg

from gateway.errors import NodeError, Reason
from gateway.identifiers import ClientId
from policies.consentdb import CONSENT_COLUMNS, record_of, revision_row, row_of
from policies.consentgrant import GrantApi
from policies.consentrecords import (
    GENESIS,
    ConsentError,
    ConsentRecord,
    ConsentRevision,
    history_verifies,
    new_record,
    revoking_actor,
    seal_revision,
)
from policies.consentsign import RevisionSigner
from policies.purposes import Purpose

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)

_DDL = """
CREATE TABLE IF NOT EXISTS consents (
    consent_id TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    client TEXT NOT NULL,
    purpose_id TEXT NOT NULL,
    purpose_version INTEGER NOT NULL,
    granted_by_role TEXT NOT NULL,
    granted_by_name TEXT NOT NULL,
    valid_from DOUBLE PRECISION NOT NULL,
    valid_until DOUBLE PRECISION NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('active', 'revoked')),
    revoked_at DOUBLE PRECISION,
    revoked_by TEXT
);
CREATE INDEX IF NOT EXISTS consents_active
    ON consents (subject, client, purpose_id, purpose_version, valid_until DESC)
    WHERE state = 'active';
CREATE INDEX IF NOT EXISTS consents_by_subject ON consents (subject);
CREATE TABLE IF NOT EXISTS consent_revisions (
    consent_id TEXT NOT NULL REFERENCES consents (consent_id),
    revision INTEGER NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    actor TEXT NOT NULL,
    state TEXT NOT NULL,
    record TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    kid TEXT,
    signature TEXT,
    PRIMARY KEY (consent_id, revision)
);
"""

_INSERT_CONSENT = (
    f"INSERT INTO consents ({CONSENT_COLUMNS}) "  # noqa: S608 (fixed column list)
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
)
_INSERT_REVISION = (
    "INSERT INTO consent_revisions (consent_id, revision, at, actor, state, "
    "record, prev_hash, hash, kid, signature) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
)
_FIND_ACTIVE = (
    f"SELECT {CONSENT_COLUMNS} FROM consents WHERE subject = $1 AND client = $2 "  # noqa: S608 (fixed column list)
    "AND purpose_id = $3 AND purpose_version = $4 AND state = 'active' "
    "AND valid_from <= $5 AND valid_until > $5 ORDER BY valid_until DESC LIMIT 1"
)
_GET = f"SELECT {CONSENT_COLUMNS} FROM consents WHERE consent_id = $1"  # noqa: S608 (fixed column list)
_LOCK = f"{_GET} FOR UPDATE"
_LIST = (
    f"SELECT {CONSENT_COLUMNS} FROM consents WHERE subject = $1 "  # noqa: S608 (fixed column list)
    "ORDER BY valid_until DESC, consent_id"
)
_HISTORY = (
    "SELECT consent_id, revision, at, actor, state, record, prev_hash, hash, kid, "
    "signature FROM consent_revisions WHERE consent_id = $1 ORDER BY revision"
)
_LAST_REVISION = (
    "SELECT revision, hash FROM consent_revisions WHERE consent_id = $1 "
    "ORDER BY revision DESC LIMIT 1"
)
_REVOKE = (
    "UPDATE consents SET state = 'revoked', revoked_at = $2, revoked_by = $3 "
    "WHERE consent_id = $1"
)


async def _no_reset(connection: asyncpg.Connection) -> None:
    """Skip the pool's reset round trip: the store leaves no session state behind."""


class PostgresConsentStore(GrantApi):
    """Consent records in PostgreSQL; open with :meth:`open`, end with :meth:`close`.

    The same interface as :class:`policies.consent.ConsentStore`: ConsentError for
    a grant or revocation that cannot be made, NodeError if the database fails.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        clock: Callable[[], float],
        *,
        signer: RevisionSigner | None = None,
    ):
        self._pool = pool
        self._clock = clock
        self._signer = signer

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        schema: str | None = None,
        pool_size: int = 8,
        clock: Callable[[], float] = time.time,
        signer: RevisionSigner | None = None,
    ) -> PostgresConsentStore:
        """Connect, create the schema and tables if missing; raise NodeError.

        Raises ConsentError if ``schema`` is not a plain lower-case SQL name.
        """
        if schema is not None and not _SCHEMA_NAME.match(schema):
            raise ConsentError("the consent schema name is not a plain SQL name")
        settings = {} if schema is None else {"search_path": schema}
        async with _translate():
            if schema is not None:
                await _create_schema(dsn, schema)
            pool = await asyncpg.create_pool(
                dsn,
                min_size=1,
                max_size=max(2, pool_size),
                server_settings=settings,
                reset=_no_reset,
            )
        try:
            async with _translate(), pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", "ddl")
                await conn.execute(_DDL)
        except BaseException:
            pool.terminate()
            raise
        return cls(pool, clock, signer=signer)

    async def _grant(self, grant: dict[str, Any]) -> ConsentRecord:
        record = new_record(grant)
        revision = self._seal(
            record, 1, GENESIS, self._clock(), str(grant["actor"]).strip()
        )
        async with self._transaction() as conn:
            await conn.execute(_INSERT_CONSENT, *row_of(record))
            await conn.execute(_INSERT_REVISION, *revision_row(revision))
        return record

    async def revoke(
        self, consent_id: str, *, actor: str, at: float | None = None
    ) -> ConsentRecord:
        """Revoke a consent now; raise ConsentError if unknown or already revoked."""
        actor = revoking_actor(actor)
        when = self._clock() if at is None else at
        async with self._transaction() as conn:
            current = await conn.fetchrow(_LOCK, consent_id)
            if current is None:
                raise ConsentError("no consent has this id")
            if current["state"] != "active":
                raise ConsentError("the consent is already revoked")
            await conn.execute(_REVOKE, consent_id, when, actor)
            revoked = record_of(tuple(await conn.fetchrow(_GET, consent_id)))
            number, prev_hash = await conn.fetchrow(_LAST_REVISION, consent_id)
            revision = self._seal(revoked, number + 1, prev_hash, when, actor)
            await conn.execute(_INSERT_REVISION, *revision_row(revision))
        return revoked

    async def find_active(
        self, subject: str, client: ClientId, purpose: Purpose, at: float
    ) -> ConsentRecord | None:
        """The active consent covering this exchange at ``at``, if any.

        One prepared, indexed query (one round trip); NodeError if it fails.
        """
        async with _translate():
            row = await self._pool.fetchrow(
                _FIND_ACTIVE, subject, str(client), purpose.id, purpose.version, at
            )
        return None if row is None else record_of(tuple(row))

    async def get(self, consent_id: str) -> ConsentRecord | None:
        """One consent by id, or None; NodeError if the database fails."""
        async with _translate():
            row = await self._pool.fetchrow(_GET, consent_id)
        return None if row is None else record_of(tuple(row))

    async def list_for_subject(self, subject: str) -> list[ConsentRecord]:
        """Every consent of a student, newest window first."""
        async with _translate():
            rows = await self._pool.fetch(_LIST, subject)
        return [record_of(tuple(row)) for row in rows]

    async def history(self, consent_id: str) -> list[ConsentRevision]:
        """The revisions of a consent, oldest first; empty if the id is unknown.

        Raises ValueError if a stored snapshot is not JSON.
        """
        async with _translate():
            rows = await self._pool.fetch(_HISTORY, consent_id)
        return [_revision_of(row) for row in rows]

    async def verify_history(self, consent_id: str) -> bool:
        """True if the hash chain is intact and matches the current record.

        A store opened with a signer also requires a valid signature on every
        revision.
        """
        async with (
            _translate(),
            self._pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            current = await conn.fetchrow(_GET, consent_id)
            rows = await conn.fetch(_HISTORY, consent_id)
        try:
            revisions = [_revision_of(row) for row in rows]
        except ValueError:
            return False
        record = None if current is None else record_of(tuple(current))
        return history_verifies(record, revisions, self._signer)

    async def close(self) -> None:
        """Close every connection of the pool."""
        with contextlib.suppress(*_ERRORS):
            await self._pool.close()

    def _seal(
        self, record: ConsentRecord, number: int, prev_hash: str, at: float, actor: str
    ) -> ConsentRevision:
        return seal_revision(
            record,
            number=number,
            prev_hash=prev_hash,
            at=at,
            actor=actor,
            signer=self._signer,
        )

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with _translate(), self._pool.acquire() as conn, conn.transaction():
            yield conn


async def _create_schema(dsn: str, schema: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    finally:
        await conn.close()


def _revision_of(row: asyncpg.Record) -> ConsentRevision:
    return ConsentRevision(
        consent_id=row["consent_id"],
        revision=row["revision"],
        at=row["at"],
        actor=row["actor"],
        state=row["state"],
        record=json.loads(row["record"]),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
        kid=row["kid"],
        signature=row["signature"],
    )


@contextlib.asynccontextmanager
async def _translate() -> AsyncIterator[None]:
    """Turn a database failure into NodeError; the cause is chained, not shown."""
    try:
        yield
    except _ERRORS as exc:
        raise NodeError(Reason.INTERNAL_ERROR, log_reason="consent_store") from exc
