"""Where the message log is kept: the :class:`LogStore` interface and its SQLite store.

A store keeps sealed records (canonical bytes as hashed, with their hashes and a few
search columns) and checkpoints, which are only ever added. It checks nothing: the
writer assigns sequence numbers and the verifier judges what it reads back. Every
method may raise :class:`StoreError` when the database fails. PostgreSQL can serve
the same interface from a module of its own.

:class:`SqliteLogStore` is the embedded default: SQLite in WAL mode with
``synchronous=FULL``. All its database work runs on one dedicated thread (stdlib
:mod:`sqlite3` connections belong to the thread that made them), so calls are
serialised in the order they were made and the event loop never blocks on a disk
sync. Each batch of records is one ``BEGIN IMMEDIATE ... COMMIT`` transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
from collections.abc import AsyncGenerator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import orjson

from gateway.errors import NodeError, Reason
from gateway.msglog.checkpoint import Checkpoint
from gateway.msglog.records import SealedRecord


class StoreError(NodeError):
    """The database failed: ``NodeError(LOG_UNAVAILABLE)`` naming the operation.

    ``operation`` says what was being done; no record content is in the error.
    """

    def __init__(self, operation: str) -> None:
        super().__init__(Reason.LOG_UNAVAILABLE, log_reason=f"log_store_{operation}")
        self.operation = operation

    def __str__(self) -> str:
        return f"message log store failed: {self.operation}"


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A record as read back: the row's own columns, unchecked."""

    seq: int
    hash: str
    leaf_hash: bytes
    canonical: bytes


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A checkpoint with the store's insertion number; None if the row is unreadable."""

    number: int
    checkpoint: Checkpoint | None


@dataclass(frozen=True, slots=True)
class LogTail:
    """The number of stored records and the hash of the last one (``""`` if none)."""

    size: int
    last_hash: str


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """Filters for :meth:`LogStore.search`; unset filters match everything."""

    client_id: str | None = None
    service_id: str | None = None
    decision: str | None = None
    message_id: str | None = None
    subject_hash: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 100


#: Seals the pending records after the given tail: the rows to store, in seq order.
SealFn = Callable[[LogTail], list[SealedRecord]]


class LogStore(Protocol):
    """Where the message log lives. Writers exclude each other; readers may be many."""

    #: The number of record batches committed through this store object.
    transactions: int

    async def probe(self) -> None:
        """Raise StoreError unless the store answers now (before anything leaves)."""
        ...

    async def open(self) -> None:
        """Create or open the database and its schema."""
        ...

    async def close(self) -> None:
        """Release the database."""
        ...

    async def append_sealing(self, seal: SealFn) -> list[SealedRecord]:
        """Append one batch: in one transaction that excludes every other writer,
        read the tail, call ``seal`` with it and store the rows it returns.

        Sequence numbers thus come from the database. Returns the stored rows,
        durable when this returns. ``seal`` must not touch the event loop (it may
        run on the store's thread).
        """
        ...

    async def claim_sealer(self) -> bool:
        """Whether this node is the one that seals checkpoints (elected, held)."""
        ...

    async def tail(self) -> LogTail:
        """The record count and the last record's hash."""
        ...

    def iter_leaf_hashes(self, start: int = 0) -> AsyncGenerator[list[bytes], None]:
        """The stored leaf hashes from ``start`` in seq order, in chunks."""
        ...

    def iter_records(self, start: int = 0) -> AsyncGenerator[list[StoredRecord], None]:
        """The stored records from ``start`` in seq order, in chunks."""
        ...

    async def get_range(self, start: int, stop: int) -> list[StoredRecord]:
        """The records with ``start <= seq < stop``, in seq order."""
        ...

    async def search(self, query: SearchQuery) -> list[StoredRecord]:
        """Records matching ``query``, newest first, at most ``query.limit``."""
        ...

    async def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Add a checkpoint; earlier ones are kept."""
        ...

    async def checkpoints(self) -> list[StoredCheckpoint]:
        """Every checkpoint, in the order they were saved."""
        ...

    async def latest_checkpoint(self) -> Checkpoint | None:
        """The last checkpoint saved, if any."""
        ...

    async def save_nodes(self, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        """Store interior nodes ``(height, index, hash)``; ones already stored stay."""
        ...

    async def read_nodes(
        self, keys: Sequence[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        """The stored hashes of nodes ``(height, index)``; height 0 is a leaf hash.

        Keys not stored are absent from the answer.
        """
        ...

    async def save_body_key(self, label: str, envelope: bytes) -> None:
        """Store a wrapped body data key once; a label already stored is kept."""
        ...

    async def body_key(self, label: str) -> bytes | None:
        """The wrapped body data key stored under ``label``."""
        ...

    async def bodies(self, seqs: list[int]) -> dict[int, bytes]:
        """The encrypted body entries stored beside records ``seqs``."""
        ...


# -- SQLite -------------------------------------------------------------------------

T = TypeVar("T")

CHUNK = 2000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq         INTEGER PRIMARY KEY,
    hash        TEXT NOT NULL,
    leaf_hash   BLOB NOT NULL,
    canonical   BLOB NOT NULL,
    ts          REAL NOT NULL,
    message_id  TEXT NOT NULL,
    client_id   TEXT,
    service_id  TEXT,
    decision    TEXT NOT NULL,
    subject_hash TEXT
);
CREATE INDEX IF NOT EXISTS records_ts ON records (ts);
CREATE INDEX IF NOT EXISTS records_message_id ON records (message_id);
CREATE INDEX IF NOT EXISTS records_client_id ON records (client_id, ts);
CREATE INDEX IF NOT EXISTS records_service_id ON records (service_id, ts);
CREATE INDEX IF NOT EXISTS records_decision ON records (decision, ts);
CREATE INDEX IF NOT EXISTS records_subject_hash ON records (subject_hash, ts);
CREATE TABLE IF NOT EXISTS checkpoints (
    number      INTEGER PRIMARY KEY AUTOINCREMENT,
    tree_size   INTEGER NOT NULL,
    body        BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS nodes (
    height      INTEGER NOT NULL,
    idx         INTEGER NOT NULL,
    hash        BLOB NOT NULL,
    PRIMARY KEY (height, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bodies (
    seq         INTEGER PRIMARY KEY,
    entries     BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS body_keys (
    label       TEXT PRIMARY KEY,
    envelope    BLOB NOT NULL
);
"""

SELECT_RECORDS = "SELECT seq, hash, leaf_hash, canonical FROM records"
_READ_BODIES = (
    "SELECT seq, entries FROM bodies WHERE seq IN (SELECT value FROM json_each(?))"
)
_READ_LEAVES = (
    "SELECT seq, leaf_hash FROM records WHERE seq IN (SELECT value FROM json_each(?))"
)
_READ_NODES = (
    "SELECT idx, hash FROM nodes "
    "WHERE height = ? AND idx IN (SELECT value FROM json_each(?))"
)


class PagedReads:
    """Streaming reads shared by the stores, over each store's own ``_pages``
    (rows of ``select`` from ``start`` in seq order, ``CHUNK`` at a time)."""

    def _pages(self, select: str, start: int) -> AsyncGenerator[list[Any], None]:
        raise NotImplementedError

    async def iter_leaf_hashes(
        self, start: int = 0
    ) -> AsyncGenerator[list[bytes], None]:
        """The leaf hashes from ``start`` in seq order, ``CHUNK`` at a time."""
        pages = self._pages("SELECT seq, leaf_hash FROM records", start)
        async with contextlib.aclosing(pages) as chunks:
            async for rows in chunks:
                yield [bytes(row[1]) for row in rows]

    async def iter_records(
        self, start: int = 0
    ) -> AsyncGenerator[list[StoredRecord], None]:
        """The records from ``start`` in seq order, ``CHUNK`` at a time."""
        pages = self._pages(SELECT_RECORDS, start)
        async with contextlib.aclosing(pages) as chunks:
            async for rows in chunks:
                yield [stored_record(row) for row in rows]


class SqliteLogStore(PagedReads):
    """A :class:`~gateway.msglog.store.LogStore` in one SQLite file.

    Every method raises :class:`~gateway.msglog.store.StoreError` if SQLite fails,
    and before :meth:`open`. ``transactions`` counts committed record batches.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.transactions = 0
        self._db: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def open(self) -> None:
        """Create the file and schema if needed; WAL, ``synchronous=FULL``."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="msglog-sqlite")
        await self._run("open", self._open_sync)

    async def close(self) -> None:
        """Close the connection and stop the database thread."""
        if self._executor is None:
            return
        await self._run("close", self._close_sync)
        self._executor.shutdown(wait=True)
        self._executor = None

    async def append_sealing(self, seal: SealFn) -> list[SealedRecord]:
        """Seal after the stored tail and insert, in one ``BEGIN IMMEDIATE``."""
        rows = await self._run("append", self._append_sync, seal)
        self.transactions += 1
        return rows

    async def claim_sealer(self) -> bool:
        """Always: one node writes an SQLite log."""
        return True

    async def probe(self) -> None:
        """Nothing to ask: the file is local, and a failed write fails the log."""

    async def tail(self) -> LogTail:
        """The record count and the last record's hash."""
        row = await self._run(
            "tail", self._one, "SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1"
        )
        return LogTail(0, "") if row is None else LogTail(row[0] + 1, row[1])

    async def get_range(self, start: int, stop: int) -> list[StoredRecord]:
        """The records with ``start <= seq < stop``."""
        sql = f"{SELECT_RECORDS} WHERE seq >= ? AND seq < ? ORDER BY seq"
        rows = await self._run("read", self._all, sql, (start, stop))
        return [stored_record(row) for row in rows]

    async def search(self, query: SearchQuery) -> list[StoredRecord]:
        """Records matching ``query``, newest first."""
        sql, params = _search_sql(query)
        rows = await self._run("search", self._all, sql, params)
        return [stored_record(row) for row in rows]

    async def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Add a checkpoint row; rows are never updated."""
        await self._run("checkpoint", self._save_checkpoint_sync, checkpoint)

    async def checkpoints(self) -> list[StoredCheckpoint]:
        """Every checkpoint in insertion order."""
        sql = "SELECT number, body FROM checkpoints ORDER BY number"
        rows = await self._run("read_checkpoints", self._all, sql, ())
        return [StoredCheckpoint(row[0], checkpoint_or_none(row[1])) for row in rows]

    async def latest_checkpoint(self) -> Checkpoint | None:
        """The checkpoint saved last."""
        sql = "SELECT body FROM checkpoints ORDER BY number DESC LIMIT 1"
        row = await self._run("read_checkpoints", self._one, sql)
        if row is None:
            return None
        checkpoint = checkpoint_or_none(row[0])
        if checkpoint is None:
            raise StoreError("read_checkpoints")
        return checkpoint

    async def save_nodes(self, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        """Insert interior nodes, ignoring ones already stored."""
        if nodes:
            await self._run("save_nodes", self._save_nodes_sync, list(nodes))

    async def read_nodes(
        self, keys: Sequence[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        """Node hashes by ``(height, index)`` in one call on the database thread."""
        if not keys:
            return {}
        return await self._run("read_nodes", self._read_nodes_sync, list(keys))

    async def save_body_key(self, label: str, envelope: bytes) -> None:
        """Store a wrapped data key; a label already stored is kept."""
        sql = "INSERT OR IGNORE INTO body_keys (label, envelope) VALUES (?, ?)"
        await self._run("save_body_key", self._one, sql, (label, envelope))

    async def body_key(self, label: str) -> bytes | None:
        """The wrapped data key stored under ``label``."""
        sql = "SELECT envelope FROM body_keys WHERE label = ?"
        row = await self._run("read_body_key", self._one, sql, (label,))
        return None if row is None else bytes(row[0])

    async def bodies(self, seqs: list[int]) -> dict[int, bytes]:
        """The stored body entries of ``seqs``."""
        sql = _READ_BODIES
        rows = await self._run("read_bodies", self._all, sql, (orjson.dumps(seqs),))
        return {int(row[0]): bytes(row[1]) for row in rows}

    # -- the database thread ----------------------------------------------------------

    async def _run(self, operation: str, func: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise StoreError(f"{operation}_not_open")
        loop = asyncio.get_running_loop()
        call = functools.partial(func, *args)
        try:
            return await loop.run_in_executor(self._executor, call)
        except (sqlite3.Error, ValueError) as exc:
            raise StoreError(operation) from exc

    async def _pages(self, select: str, start: int) -> AsyncGenerator[list[Any], None]:
        sql = f"{select} WHERE seq >= ? ORDER BY seq LIMIT {CHUNK}"
        position = start
        while True:
            rows = await self._run("read", self._all, sql, (position,))
            if not rows:
                return
            yield rows
            position = rows[-1][0] + 1

    def _open_sync(self) -> None:
        if self._db is not None:
            return
        db = sqlite3.connect(self.path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        _migrate(db)
        db.executescript(_SCHEMA)
        self._db = db

    def _close_sync(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise sqlite3.ProgrammingError("the message log store is not open")
        return self._db

    def _append_sync(self, seal: SealFn) -> list[SealedRecord]:
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            last = db.execute(
                "SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            rows = seal(
                LogTail(0, "") if last is None else LogTail(last[0] + 1, last[1])
            )
            db.executemany(_INSERT, [columns(row) for row in rows])
            db.executemany(
                "INSERT INTO bodies (seq, entries) VALUES (?, ?)",
                [(row.seq, row.bodies) for row in rows if row.bodies is not None],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return rows

    def _save_checkpoint_sync(self, checkpoint: Checkpoint) -> None:
        self._conn().execute(
            "INSERT INTO checkpoints (tree_size, body) VALUES (?, ?)",
            (checkpoint.tree_size, checkpoint.to_json()),
        )

    def _save_nodes_sync(self, nodes: list[tuple[int, int, bytes]]) -> None:
        db = self._conn()
        db.execute("BEGIN")
        try:
            db.executemany(
                "INSERT OR IGNORE INTO nodes (height, idx, hash) VALUES (?, ?, ?)",
                nodes,
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _read_nodes_sync(
        self, keys: list[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        db = self._conn()
        found: dict[tuple[int, int], bytes] = {}
        by_height: dict[int, list[int]] = {}
        for height, index in keys:
            by_height.setdefault(height, []).append(index)
        for height, indexes in by_height.items():
            ids = orjson.dumps(indexes)
            if height == 0:
                rows = db.execute(_READ_LEAVES, (ids,))
            else:
                rows = db.execute(_READ_NODES, (height, ids))
            for index, value in rows:
                found[(height, int(index))] = bytes(value)
        return found

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._conn().execute(sql, params).fetchone()

    def _all(self, sql: str, params: Sequence[Any]) -> list[Any]:
        return self._conn().execute(sql, params).fetchall()


COLUMNS = (
    "seq, hash, leaf_hash, canonical, ts, message_id, client_id, service_id, "
    "decision, subject_hash"
)


_INSERT = (
    "INSERT INTO records (seq, hash, leaf_hash, canonical, ts, message_id, "
    "client_id, service_id, decision, subject_hash) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _migrate(db: sqlite3.Connection) -> None:
    """Add the columns a log written by an earlier version lacks."""
    have = {row[1] for row in db.execute("PRAGMA table_info(records)")}
    if have and "subject_hash" not in have:
        db.execute("ALTER TABLE records ADD COLUMN subject_hash TEXT")


def columns(r: SealedRecord) -> tuple[Any, ...]:
    """The values of :data:`COLUMNS` for one row."""
    return (
        r.seq,
        r.hash,
        r.leaf_hash,
        r.canonical,
        r.ts,
        r.message_id,
        r.client_id,
        r.service_id,
        r.decision,
        r.subject_hash,
    )


def stored_record(row: Sequence[Any]) -> StoredRecord:
    return StoredRecord(int(row[0]), str(row[1]), bytes(row[2]), bytes(row[3]))


def checkpoint_or_none(body: bytes) -> Checkpoint | None:
    # A row that is not a checkpoint is kept visible as None, so that the verifier
    # can name it instead of failing to read the log.
    try:
        value = orjson.loads(body)
        return Checkpoint.from_dict(value) if isinstance(value, dict) else None
    except ValueError:
        return None


def search_clauses(
    query: SearchQuery, placeholder: Callable[[int], str]
) -> tuple[list[str], list[Any]]:
    """The WHERE clauses and parameters of ``query``.

    ``placeholder(n)`` names the n-th parameter (1-based) in the database's style.
    Only fixed column names are interpolated; every value is a parameter.
    """
    clauses: list[str] = []
    params: list[Any] = []
    for condition, value in (
        ("client_id = ", query.client_id),
        ("service_id = ", query.service_id),
        ("decision = ", query.decision),
        ("message_id = ", query.message_id),
        ("subject_hash = ", query.subject_hash),
        ("ts >= ", query.since),
        ("ts < ", query.until),
    ):
        if value is not None:
            params.append(value)
            clauses.append(condition + placeholder(len(params)))
    return clauses, params


def _search_sql(query: SearchQuery) -> tuple[str, list[Any]]:
    clauses, params = search_clauses(query, lambda _: "?")
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    params.append(query.limit)
    return f"{SELECT_RECORDS}{where} ORDER BY seq DESC LIMIT ?", params
