"""The message log in PostgreSQL (asyncpg): several nodes writing one log.

Writers exclude each other with a transaction-scoped advisory lock: each batch
takes the lock, reads the stored tail, seals its records after it (so sequence
numbers come from the database and the hash chain has one order) and commits,
which releases the lock. Committed records are therefore always contiguous, and
the highest contiguous committed seq is simply the tail.

The sealer is elected with a session advisory lock (``pg_try_advisory_lock``) held
on a connection of its own: the node that holds it seals; if that node dies its
session ends, the lock is free and the next node to ask takes over. A node that
is not the sealer keeps the connection it asked on and asks on it again at the
next checkpoint, rather than connecting anew each time. A checkpoint
is stored only if it does not shrink the sealed size, checked under a lock, so a
sealer that lags behind can never store a checkpoint out of order.

Appends go over one connection of their own, not the pool: a batch is four round
trips (``BEGIN`` with the lock, the tail, one ``INSERT`` of every row from arrays,
``COMMIT``), where a pooled transaction with ``COPY`` took seven (the pool's reset
on release, ``BEGIN`` and the lock apart, and ``COPY``'s own exchange). A node
appends one batch at a time, so the connection is never shared; it is replaced
after any failure.

``schema`` (optional) keeps the log's tables in a schema of their own; the lock
keys derive from it, so logs in different schemas never contend.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

import asyncpg

from gateway.msglog import pgsql
from gateway.msglog.checkpoint import Checkpoint
from gateway.msglog.records import SealedRecord
from gateway.msglog.store import (
    CHUNK,
    SELECT_ARCHIVES,
    SELECT_RECORDS,
    SELECT_TAIL,
    ArchiveEntry,
    LogTail,
    PagedReads,
    SealFn,
    SearchQuery,
    StoredCheckpoint,
    StoredRecord,
    StoreError,
    archive_columns,
    archive_entry,
    checkpoint_or_none,
    columns,
    search_clauses,
    stored_record,
)

_PROBE_TIMEOUT_S = 1.0
#: The tables an append writes, each present and writable by this user.
_PROBE = (
    "SELECT has_table_privilege('records', 'INSERT')"
    " AND has_table_privilege('bodies', 'INSERT')"
)
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

#: ``InternalClientError``: a kept connection the server has ended can refuse a
#: query before the client has noticed that it is closed.
_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)


class PostgresLogStore(PagedReads):
    """A :class:`~gateway.msglog.store.LogStore` in PostgreSQL, shared by nodes.

    Every method raises :class:`~gateway.msglog.store.StoreError` if the database
    fails, and before :meth:`open`. The DSN is never put in an error or log line.
    """

    def __init__(self, dsn: str, *, schema: str | None = None, pool_size: int = 4):
        if schema is not None and not _SCHEMA_NAME.match(schema):
            raise StoreError("schema_name_invalid")
        self._dsn = dsn
        self._schema = schema
        self._pool_size = max(2, pool_size)
        self._pool: asyncpg.Pool | None = None
        self._sealer: asyncpg.Connection | None = None
        #: The connection a claim that lost asked on, kept for the next claim.
        self._candidate: asyncpg.Connection | None = None
        self._claiming = asyncio.Lock()
        #: The appends' own connection, opened on first use and after a failure.
        self._writer: asyncpg.Connection | None = None
        self._writing = asyncio.Lock()
        self.transactions = 0

    async def open(self) -> None:
        """Connect and create the schema and tables if they are missing."""
        if self._pool is not None:
            return
        async with _translate("open"):
            if self._schema is not None:
                conn = await asyncpg.connect(self._dsn)
                try:
                    await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self._schema}"')
                finally:
                    await conn.close()
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=1,
                max_size=self._pool_size,
                server_settings=self._settings(),
            )
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", self._key("ddl"))
                await conn.execute(pgsql.DDL)

    async def close(self) -> None:
        """Give up the sealer role and close every connection."""
        sealer, self._sealer = self._sealer, None
        candidate, self._candidate = self._candidate, None
        writer, self._writer = self._writer, None
        pool, self._pool = self._pool, None
        for conn in (sealer, candidate, writer):
            with contextlib.suppress(*_ERRORS):
                if conn is not None:
                    await conn.close()
        if pool is not None:
            with contextlib.suppress(*_ERRORS):
                await pool.close()

    async def append_sealing(
        self, seal: SealFn, *, flush: bool = True
    ) -> list[SealedRecord]:
        """Lock out other writers, seal after the tail, copy the rows in, commit.

        Without ``flush`` the transaction commits with ``synchronous_commit`` off:
        the server answers before its WAL is flushed, and a later synchronous
        commit, which flushes the WAL up to its own record, makes this one durable.
        """
        async with _translate("append"), self._writing:
            conn = await self._writer_conn()
            try:
                rows = await _append(conn, seal, self._key("write"), flush=flush)
            except BaseException:
                # Whatever state the connection is in, the next batch gets another.
                self._writer = None
                conn.terminate()
                raise
        self.transactions += 1
        return rows

    async def claim_sealer(self) -> bool:
        """Hold, or try to take, the sealer's session advisory lock.

        A claim that loses keeps its connection and the next claim asks on it
        again; a new one is opened only if that one was closed or failed.
        """
        async with _translate("claim_sealer"), self._claiming:
            if self._sealer is not None and not self._sealer.is_closed():
                return True
            self._sealer = None
            # While it asks, the connection is this claim's alone: a close()
            # meanwhile does not see it, and the check below closes it.
            conn, self._candidate = self._candidate, None
            if conn is None or conn.is_closed():
                conn = await asyncpg.connect(
                    self._dsn, server_settings=self._settings()
                )
            try:
                won = await conn.fetchval(
                    "SELECT pg_try_advisory_lock($1)", self._key("sealer")
                )
            except BaseException:
                conn.terminate()
                raise
            # A store closed while this ran must not keep the connection.
            if self._pool is None:
                await conn.close()
                return False
            if won:
                self._sealer = conn
            else:
                self._candidate = conn
            return bool(won)

    async def probe(self) -> None:
        """One round trip within a second; StoreError unless the log's tables
        are there and this user may write them.

        A node learns of an outage from this probe before it forwards an exchange,
        not from the failed write that would come only after the provider acted.
        A database that answers but has lost a table or the right to write it is
        an outage too: answering ``SELECT 1`` would declare the log back, and the
        next write would fail again.
        """
        try:
            async with asyncio.timeout(_PROBE_TIMEOUT_S):
                async with _translate("probe"), self._conn() as conn:
                    writable = await conn.fetchval(_PROBE)
        except TimeoutError as exc:
            raise StoreError("probe") from exc
        if writable is not True:
            raise StoreError("probe")

    async def tail(self) -> LogTail:
        """The record count (highest committed seq + 1) and the last hash."""
        async with _translate("tail"), self._conn() as conn:
            return _tail(await conn.fetchrow(SELECT_TAIL))

    async def get_range(self, start: int, stop: int) -> list[StoredRecord]:
        """The records with ``start <= seq < stop``."""
        sql = f"{SELECT_RECORDS} WHERE seq >= $1 AND seq < $2 ORDER BY seq"
        async with _translate("read"), self._conn() as conn:
            return [stored_record(row) for row in await conn.fetch(sql, start, stop)]

    async def search(self, query: SearchQuery) -> list[StoredRecord]:
        """Records matching ``query``, newest first."""
        clauses, params = search_clauses(query, lambda n: f"${n}")
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        params.append(query.limit)
        # Only fixed column names are interpolated; every value is a parameter.
        sql = f"{SELECT_RECORDS}{where} ORDER BY seq DESC LIMIT ${len(params)}"
        async with _translate("search"), self._conn() as conn:
            return [stored_record(row) for row in await conn.fetch(sql, *params)]

    async def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Add a checkpoint unless a stored one is larger (then StoreError)."""
        async with _translate("checkpoint"), self._conn() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1)", self._key("checkpoint")
            )
            largest = await conn.fetchval("SELECT max(tree_size) FROM checkpoints")
            if largest is not None and largest > checkpoint.tree_size:
                raise StoreError("checkpoint_out_of_order")
            await conn.execute(
                "INSERT INTO checkpoints (tree_size, body) VALUES ($1, $2)",
                checkpoint.tree_size,
                checkpoint.to_json(),
            )

    async def checkpoints(self) -> list[StoredCheckpoint]:
        """Every checkpoint in insertion order."""
        sql = "SELECT number, body FROM checkpoints ORDER BY number"
        async with _translate("read_checkpoints"), self._conn() as conn:
            rows = await conn.fetch(sql)
        return [StoredCheckpoint(row[0], checkpoint_or_none(row[1])) for row in rows]

    async def latest_checkpoint(self) -> Checkpoint | None:
        """The checkpoint saved last."""
        sql = "SELECT body FROM checkpoints ORDER BY number DESC LIMIT 1"
        async with _translate("read_checkpoints"), self._conn() as conn:
            body = await conn.fetchval(sql)
        if body is None:
            return None
        checkpoint = checkpoint_or_none(body)
        if checkpoint is None:
            raise StoreError("read_checkpoints")
        return checkpoint

    async def save_nodes(self, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        """Insert interior nodes in one statement, ignoring ones already stored."""
        if not nodes:
            return
        heights, indexes, hashes = (list(column) for column in zip(*nodes, strict=True))
        async with _translate("save_nodes"), self._conn() as conn:
            await conn.execute(pgsql.SAVE_NODES, heights, indexes, hashes)

    async def read_nodes(
        self, keys: Sequence[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        """Node hashes by ``(height, index)``: two queries at most."""
        leaves = [index for height, index in keys if height == 0]
        inner = [(height, index) for height, index in keys if height != 0]
        found: dict[tuple[int, int], bytes] = {}
        async with _translate("read_nodes"), self._conn() as conn:
            if leaves:
                for row in await conn.fetch(pgsql.READ_LEAVES, leaves):
                    found[(0, int(row[0]))] = bytes(row[1])
            if inner:
                heights = [height for height, _ in inner]
                indexes = [index for _, index in inner]
                for row in await conn.fetch(pgsql.READ_NODES, heights, indexes):
                    found[(int(row[0]), int(row[1]))] = bytes(row[2])
        return found

    async def save_body_key(self, label: str, envelope: bytes) -> None:
        """Store a wrapped data key; a label already stored is kept."""
        sql = "INSERT INTO body_keys VALUES ($1, $2) ON CONFLICT DO NOTHING"
        async with _translate("save_body_key"), self._conn() as conn:
            await conn.execute(sql, label, envelope)

    async def body_key(self, label: str) -> bytes | None:
        """The wrapped data key stored under ``label``."""
        sql = "SELECT envelope FROM body_keys WHERE label = $1"
        async with _translate("read_body_key"), self._conn() as conn:
            value = await conn.fetchval(sql, label)
        return None if value is None else bytes(value)

    async def bodies(self, seqs: list[int]) -> dict[int, bytes]:
        """The stored body entries of ``seqs``."""
        sql = "SELECT seq, entries FROM bodies WHERE seq = ANY($1::bigint[])"
        async with _translate("read_bodies"), self._conn() as conn:
            rows = await conn.fetch(sql, seqs)
        return {int(row[0]): bytes(row[1]) for row in rows}

    async def archived_size(self) -> int:
        """The number of archived records."""
        async with _translate("read_archived"), self._conn() as conn:
            last = await conn.fetchval(pgsql.ARCHIVED_SIZE)
        return 0 if last is None else int(last) + 1

    async def archives(self) -> list[ArchiveEntry]:
        """Every archive file made, oldest first."""
        async with _translate("read_archives"), self._conn() as conn:
            rows = await conn.fetch(SELECT_ARCHIVES)
        return [archive_entry(row) for row in rows]

    async def archived_message(self, message_id: str) -> list[tuple[int, str]]:
        """The seq and archive file of each archived record of ``message_id``."""
        async with _translate("read_archived"), self._conn() as conn:
            rows = await conn.fetch(pgsql.ARCHIVED_MESSAGE, message_id)
        return [(int(row[0]), str(row[1])) for row in rows]

    async def prune(self, entry: ArchiveEntry) -> None:
        """Move ``entry``'s records to the kept hashes, holding the writers' lock."""
        span = (entry.first_seq, entry.end_seq)
        async with _translate("prune"), self._conn() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", self._key("write"))
            last = await conn.fetchval(pgsql.ARCHIVED_SIZE)
            if (0 if last is None else int(last) + 1) != entry.first_seq:
                raise StoreError("prune_not_at_start")
            moved = await conn.execute(pgsql.KEEP_ARCHIVED, *span)
            if moved != f"INSERT 0 {entry.end_seq - entry.first_seq}":
                raise StoreError("prune_not_contiguous")
            await conn.execute("DELETE FROM bodies WHERE seq >= $1 AND seq < $2", *span)
            await conn.execute(
                "DELETE FROM records WHERE seq >= $1 AND seq < $2", *span
            )
            await conn.execute(pgsql.INSERT_ARCHIVE, *archive_columns(entry))

    # -- helpers ----------------------------------------------------------------------

    async def _writer_conn(self) -> asyncpg.Connection:
        if self._pool is None:
            raise StoreError("not_open")
        if self._writer is None or self._writer.is_closed():
            conn = await asyncpg.connect(self._dsn, server_settings=self._settings())
            if self._pool is None:
                # Closed while connecting: the store writes nothing more.
                await conn.close()
                raise StoreError("not_open")
            self._writer = conn
        return self._writer

    @contextlib.asynccontextmanager
    async def _conn(self) -> AsyncIterator[asyncpg.Connection]:
        if self._pool is None:
            raise StoreError("not_open")
        async with self._pool.acquire() as conn:
            yield conn

    async def _pages(self, select: str, start: int) -> AsyncGenerator[list[Any], None]:
        sql = f"{select} WHERE seq >= $1 ORDER BY seq LIMIT {CHUNK}"
        position = start
        while True:
            async with _translate("read"), self._conn() as conn:
                rows = await conn.fetch(sql, position)
            if not rows:
                return
            yield rows
            position = rows[-1][0] + 1

    def _settings(self) -> dict[str, str]:
        return {} if self._schema is None else {"search_path": self._schema}

    def _key(self, purpose: str) -> int:
        """A 64-bit advisory lock key for ``purpose`` in this log's schema."""
        name = f"shiksha-msglog:{self._schema or ''}:{purpose}".encode()
        return int.from_bytes(hashlib.sha256(name).digest()[:8], "big", signed=True)


async def _append(
    conn: asyncpg.Connection, seal: SealFn, key: int, *, flush: bool
) -> list[SealedRecord]:
    """One batch in one transaction: lock, read the tail, seal after it, insert."""
    begin = pgsql.BEGIN_LOCKED if flush else pgsql.BEGIN_LOCKED_UNFLUSHED
    await conn.execute(begin.format(key=int(key)))
    rows = seal(_tail(await conn.fetchrow(SELECT_TAIL)))
    if rows:
        await conn.execute(pgsql.INSERT_RECORDS, *zip(*map(columns, rows), strict=True))
        bodies = [(r.seq, r.bodies) for r in rows if r.bodies is not None]
        if bodies:
            await conn.execute(pgsql.INSERT_BODIES, *zip(*bodies, strict=True))
    await conn.execute("COMMIT")
    return rows


def _tail(row: Any) -> LogTail:
    return LogTail(0, "") if row is None else LogTail(int(row[0]) + 1, str(row[1]))


@contextlib.asynccontextmanager
async def _translate(operation: str) -> AsyncIterator[None]:
    """Turn a database failure into StoreError(operation); the cause is chained."""
    try:
        yield
    except StoreError:
        raise
    except _ERRORS as exc:
        raise StoreError(operation) from exc
