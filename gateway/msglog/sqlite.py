"""The embedded message-log store: SQLite in WAL mode with ``synchronous=FULL``.

Its database work runs on one dedicated thread, so calls are serialised in the
order they were made and the event loop never blocks on a disk sync. Each batch of
records is one ``BEGIN IMMEDIATE ... COMMIT`` transaction.

One exception: a batch that need not be flushed (the request record of step 8) is
committed on the caller's thread when the connection is free. Such a commit only
writes pages to the write-ahead log, which takes tens of microseconds; handing it
to the thread and back cost several times that in CPU, once per forwarded
exchange. A lock keeps the two threads off the connection at the same time, and
the caller's thread never waits for another connection's write lock (a
``mediator log archive`` pruning beside the node): that would stop the event loop,
so such a batch goes to the database thread, which waits. Only the database
thread's flushed commits checkpoint the write-ahead log (SQLite's own check, every
1,000 pages): a checkpoint syncs the database, which the caller's thread must
never wait for.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import orjson

from gateway.msglog.checkpoint import Checkpoint
from gateway.msglog.records import SealedRecord
from gateway.msglog.sqlschema import (
    ARCHIVED_MESSAGE,
    ARCHIVED_SIZE,
    INSERT_ARCHIVE,
    READ_BODIES,
    READ_LEAVES,
    READ_NODES,
    SCHEMA,
    keep_archived,
    migrate,
    search_sql,
)
from gateway.msglog.store import (
    CHUNK,
    RECORD_COLUMNS,
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
    stored_record,
)
from gateway.privatefiles import create_private_file
from gateway.sqlitebatch import WriterThread, insert_rows

T = TypeVar("T")


#: Pages of write-ahead log at which a flushed commit checkpoints (SQLite's default).
WAL_CHECKPOINT_PAGES = 1000
#: How long the database thread waits for another connection's write lock (ms).
BUSY_TIMEOUT_MS = 5000


class SqliteLogStore(PagedReads):
    """A :class:`~gateway.msglog.store.LogStore` in one SQLite file.

    Every method raises :class:`~gateway.msglog.store.StoreError` if SQLite fails,
    and before :meth:`open`. ``transactions`` counts committed record batches.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.transactions = 0
        #: Whether the connection's commits sync the log (``synchronous=FULL``).
        self._flushing = True
        self._db: sqlite3.Connection | None = None
        self._thread: WriterThread | None = None
        #: Held by whichever thread uses the connection.
        self._lock = threading.Lock()
        #: Whether the connection waits for other connections' write locks.
        self._waiting = True

    async def open(self) -> None:
        """Create the file and schema if needed; WAL, ``synchronous=FULL``."""
        if self._thread is None:
            self._thread = WriterThread("msglog-sqlite")
        await self._run("open", self._open_sync)

    async def close(self) -> None:
        """Close the connection and stop the database thread."""
        if self._thread is None:
            return
        await self._run("close", self._close_sync)
        self._thread.stop()
        self._thread = None

    async def append_sealing(
        self, seal: SealFn, *, flush: bool = True
    ) -> list[SealedRecord]:
        """Seal after the stored tail and insert, in one ``BEGIN IMMEDIATE``.

        Without ``flush`` the transaction runs with ``synchronous=NORMAL``: its
        pages reach the write-ahead log but the log is not synced; the next
        ``FULL`` commit syncs the log and with it this transaction. Such a batch
        is committed right here, on the event loop's thread, when the database
        thread is not using the connection (see the module docstring).
        """
        rows = None if flush else self._append_here(seal)
        if rows is None:
            rows = await self._run("append", self._append_sync, seal, flush)
        self.transactions += 1
        return rows

    async def claim_sealer(self) -> bool:
        """Always: one node writes an SQLite log."""
        return True

    async def probe(self) -> None:
        """Nothing to ask: the file is local, and a failed write fails the log."""

    async def tail(self) -> LogTail:
        """The record count and the last record's hash."""
        row = await self._run("tail", self._one, SELECT_TAIL)
        return LogTail(0, "") if row is None else LogTail(row[0] + 1, row[1])

    async def get_range(self, start: int, stop: int) -> list[StoredRecord]:
        """The records with ``start <= seq < stop``."""
        sql = f"{SELECT_RECORDS} WHERE seq >= ? AND seq < ? ORDER BY seq"
        rows = await self._run("read", self._all, sql, (start, stop))
        return [stored_record(row) for row in rows]

    async def search(self, query: SearchQuery) -> list[StoredRecord]:
        """Records matching ``query``, newest first."""
        sql, params = search_sql(query)
        rows = await self._run("search", self._all, sql, params)
        return [stored_record(row) for row in rows]

    async def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Add a checkpoint unless a stored one is larger (then StoreError);
        rows are never updated."""
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
        sql = READ_BODIES
        rows = await self._run("read_bodies", self._all, sql, (orjson.dumps(seqs),))
        return {int(row[0]): bytes(row[1]) for row in rows}

    async def archived_size(self) -> int:
        """The number of archived records."""
        row = await self._run("read_archived", self._one, ARCHIVED_SIZE)
        return 0 if row is None or row[0] is None else int(row[0]) + 1

    async def archives(self) -> list[ArchiveEntry]:
        """Every archive file made, oldest first."""
        rows = await self._run("read_archives", self._all, SELECT_ARCHIVES, ())
        return [archive_entry(row) for row in rows]

    async def archived_message(self, message_id: str) -> list[tuple[int, str]]:
        """The seq and archive file of each archived record of ``message_id``."""
        sql = ARCHIVED_MESSAGE
        rows = await self._run("read_archived", self._all, sql, (message_id,))
        return [(int(row[0]), str(row[1])) for row in rows]

    async def prune(self, entry: ArchiveEntry) -> None:
        """Move ``entry``'s records to the kept hashes in one ``BEGIN IMMEDIATE``."""
        await self._run("prune", self._prune_sync, entry)

    # -- the database thread ----------------------------------------------------------

    async def _run(self, operation: str, func: Callable[..., T], *args: Any) -> T:
        if self._thread is None:
            raise StoreError(f"{operation}_not_open")
        try:
            return await self._thread.run(self._locked, func, *args)
        except (sqlite3.Error, ValueError) as exc:
            raise StoreError(operation) from exc

    def _locked(self, func: Callable[..., T], *args: Any) -> T:
        with self._lock:
            self._wait_for_writers(True)
            return func(*args)

    def _wait_for_writers(self, wait: bool) -> None:
        """Let the connection wait for another connection's write lock, or not."""
        if self._db is not None and wait != self._waiting:
            self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS if wait else 0}")
            self._waiting = wait

    def _append_here(self, seal: SealFn) -> list[SealedRecord] | None:
        """An unflushed append on this thread; None if the connection is busy.

        Busy also means that another connection holds the write lock: the batch
        then goes to the database thread, which waits for it.
        """
        if self._db is None or not self._lock.acquire(blocking=False):
            return None
        try:
            self._wait_for_writers(False)
            return self._append_sync(seal, False)
        except sqlite3.OperationalError as exc:
            if _busy(exc) and not self._conn().in_transaction:
                return None
            raise StoreError("append") from exc
        except (sqlite3.Error, ValueError) as exc:
            raise StoreError("append") from exc
        finally:
            self._lock.release()

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
        create_private_file(self.path)
        # Used by the database thread and, for unflushed appends, by the event
        # loop's thread: never both at once (the store's lock).
        db = sqlite3.connect(
            self.path,
            isolation_level=None,
            check_same_thread=False,
            timeout=BUSY_TIMEOUT_MS / 1000,
        )
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        migrate(db)
        db.executescript(SCHEMA)
        self._db = db
        self._waiting = True

    def _close_sync(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise sqlite3.ProgrammingError("the message log store is not open")
        return self._db

    def _append_sync(self, seal: SealFn, flush: bool) -> list[SealedRecord]:
        db = self._conn()
        if flush != self._flushing:
            # An unflushed commit may run on the event loop's thread: it neither
            # syncs nor checkpoints (a checkpoint syncs the database file).
            pages = WAL_CHECKPOINT_PAGES if flush else 0
            db.execute(
                "PRAGMA synchronous=FULL" if flush else "PRAGMA synchronous=NORMAL"
            )
            db.execute(f"PRAGMA wal_autocheckpoint={pages}")
            self._flushing = flush
        with _transaction(db, "BEGIN IMMEDIATE"):
            last = db.execute(SELECT_TAIL).fetchone()
            rows = seal(
                LogTail(0, "") if last is None else LogTail(last[0] + 1, last[1])
            )
            # A statement per chunk, not per row (gateway.sqlitebatch).
            insert_rows(db, "records", RECORD_COLUMNS, [columns(r) for r in rows])
            insert_rows(
                db,
                "bodies",
                ("seq", "entries"),
                [(row.seq, row.bodies) for row in rows if row.bodies is not None],
            )
        return rows

    def _prune_sync(self, entry: ArchiveEntry) -> None:
        db = self._conn()
        span = (entry.first_seq, entry.end_seq)
        # Deleted pages are overwritten, so that pruned records do not linger in
        # the file's free pages.
        db.execute("PRAGMA secure_delete=ON")
        try:
            with _transaction(db, "BEGIN IMMEDIATE"):
                keep_archived(db, entry)
                db.execute("DELETE FROM bodies WHERE seq >= ? AND seq < ?", span)
                db.execute("DELETE FROM records WHERE seq >= ? AND seq < ?", span)
                db.execute(INSERT_ARCHIVE, archive_columns(entry))
        finally:
            db.execute("PRAGMA secure_delete=OFF")

    def _save_checkpoint_sync(self, checkpoint: Checkpoint) -> None:
        db = self._conn()
        with _transaction(db, "BEGIN IMMEDIATE"):
            (largest,) = db.execute("SELECT max(tree_size) FROM checkpoints").fetchone()
            if largest is not None and largest > checkpoint.tree_size:
                raise StoreError("checkpoint_out_of_order")
            db.execute(
                "INSERT INTO checkpoints (tree_size, body) VALUES (?, ?)",
                (checkpoint.tree_size, checkpoint.to_json()),
            )

    def _save_nodes_sync(self, nodes: list[tuple[int, int, bytes]]) -> None:
        db = self._conn()
        with _transaction(db, "BEGIN"):
            db.executemany(
                "INSERT OR IGNORE INTO nodes (height, idx, hash) VALUES (?, ?, ?)",
                nodes,
            )

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
                rows = db.execute(READ_LEAVES, (ids, ids))
            else:
                rows = db.execute(READ_NODES, (height, ids))
            for index, value in rows:
                found[(height, int(index))] = bytes(value)
        return found

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._conn().execute(sql, params).fetchone()

    def _all(self, sql: str, params: Sequence[Any]) -> list[Any]:
        return self._conn().execute(sql, params).fetchall()


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection, begin: str) -> Iterator[None]:
    """``begin`` ... ``COMMIT``; on any exception (interruption too), roll back if
    SQLite has not already (some I/O errors do), and re-raise it unmasked."""
    db.execute(begin)
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _busy(exc: sqlite3.OperationalError) -> bool:
    """Whether ``exc`` is SQLITE_BUSY (any extended code of it)."""
    return exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY
