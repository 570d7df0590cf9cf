"""Where the message log is kept: the :class:`LogStore` interface and what its
stores share.

A store keeps sealed records (canonical bytes as hashed, with their hashes and a few
search columns) and checkpoints, which are only ever added. It checks nothing: the
writer assigns sequence numbers and the verifier judges what it reads back. Every
method may raise :class:`StoreError` when the database fails. The stores are
:class:`~gateway.msglog.sqlite.SqliteLogStore` (the embedded default) and
:class:`~gateway.msglog.postgres.PostgresLogStore` (several nodes, one log).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

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
    #: The search columns as stored (ts, message_id, client_id, service_id,
    #: decision, subject_hash); searches trust them, verification checks them.
    search: tuple[Any, ...] = ()


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
class ArchivedLeaf:
    """What the database keeps of an archived record: its seq and hashes."""

    seq: int
    hash: str
    leaf_hash: bytes


@dataclass(frozen=True, slots=True)
class ArchiveEntry:
    """One archive file the records ``first_seq <= seq < end_seq`` moved to.

    ``period_end`` is the epoch second the archive's period ends; ``tree_size`` the
    size of the checkpoint its proofs lead to; ``sha256`` the file's digest.
    """

    name: str
    period: str
    period_end: float
    first_seq: int
    end_seq: int
    tree_size: int
    sha256: str
    created: float


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

    async def append_sealing(
        self, seal: SealFn, *, flush: bool = True
    ) -> list[SealedRecord]:
        """Append one batch: in one transaction that excludes every other writer,
        read the tail, call ``seal`` with it and store the rows it returns.

        Sequence numbers thus come from the database. Returns the stored rows,
        committed when this returns and, with ``flush``, on stable storage. Without
        it the commit may return before the disk has it: a write that fails still
        raises, and the next flushed append makes the batch durable with its own,
        since both stores flush their log in order. ``seal`` must not touch the
        event loop (it may run on the store's thread).
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
        """Add a checkpoint; earlier ones are kept. A checkpoint smaller than
        one already stored raises StoreError (``checkpoint_out_of_order``)."""
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

    # -- retention: records moved to archive files, their hashes kept ----------------

    async def archived_size(self) -> int:
        """The number of records archived (they are seq 0 up to this, exclusive)."""
        ...

    def iter_archived_leaves(
        self, start: int = 0
    ) -> AsyncGenerator[list[ArchivedLeaf], None]:
        """The kept hashes of archived records from ``start``, in seq order."""
        ...

    async def archives(self) -> list[ArchiveEntry]:
        """Every archive file made, oldest first."""
        ...

    async def archived_message(self, message_id: str) -> list[tuple[int, str]]:
        """The seq and archive file name of each archived record of ``message_id``."""
        ...

    async def prune(self, entry: ArchiveEntry) -> None:
        """Move the records ``entry`` covers out of the database, in one transaction.

        Their seq, hash, leaf hash and message id are kept (so proofs and
        verification still work), their canonical bytes and bodies are deleted,
        and ``entry`` is recorded. Raises StoreError("prune_not_at_start") unless
        ``entry.first_seq`` is the first record not yet archived, and
        StoreError("prune_not_contiguous") unless every record of the range is
        stored; nothing changes then.
        """
        ...


# -- SQLite -------------------------------------------------------------------------

CHUNK = 2000

#: The search indexes of the records table, the same in every dialect.
RECORD_INDEXES = """\
CREATE INDEX IF NOT EXISTS records_ts ON records (ts);
CREATE INDEX IF NOT EXISTS records_message_id ON records (message_id);
CREATE INDEX IF NOT EXISTS records_client_id ON records (client_id, ts);
CREATE INDEX IF NOT EXISTS records_service_id ON records (service_id, ts);
CREATE INDEX IF NOT EXISTS records_decision ON records (decision, ts);
CREATE INDEX IF NOT EXISTS records_subject_hash ON records (subject_hash, ts);
"""

#: The columns of RECORD_COLUMNS, in order (a test holds the two together).
SELECT_RECORDS = (
    "SELECT seq, hash, leaf_hash, canonical, "
    "ts, message_id, client_id, service_id, decision, subject_hash FROM records"
)

#: Every leaf hash, archived or not; archived records are always a prefix.
SELECT_LEAVES = (
    "SELECT seq, leaf_hash FROM (SELECT seq, leaf_hash FROM archived_leaves "
    "UNION ALL SELECT seq, leaf_hash FROM records) AS leaves"
)

#: The last record's seq and hash, from the live records or, if every record is
#: archived, from the kept hashes: sequence numbers never restart after pruning.
SELECT_TAIL = (
    "SELECT seq, hash FROM (SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1) "
    "AS live UNION ALL SELECT seq, hash FROM (SELECT seq, hash FROM archived_leaves "
    "ORDER BY seq DESC LIMIT 1) AS kept ORDER BY seq DESC LIMIT 1"
)

SELECT_ARCHIVED = "SELECT seq, hash, leaf_hash FROM archived_leaves"
SELECT_ARCHIVES = (
    "SELECT name, period, period_end, first_seq, end_seq, tree_size, sha256, created "
    "FROM archives ORDER BY first_seq"
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
        # One statement per page reads both tables at one moment, so a prune that
        # commits between pages moves rows without hiding them.
        pages = self._pages(SELECT_LEAVES, start)
        async with contextlib.aclosing(pages) as chunks:
            async for rows in chunks:
                yield [bytes(row[1]) for row in rows]

    async def iter_archived_leaves(
        self, start: int = 0
    ) -> AsyncGenerator[list[ArchivedLeaf], None]:
        """The kept hashes of archived records from ``start``, ``CHUNK`` at a time."""
        pages = self._pages(SELECT_ARCHIVED, start)
        async with contextlib.aclosing(pages) as chunks:
            async for rows in chunks:
                yield [
                    ArchivedLeaf(int(row[0]), str(row[1]), bytes(row[2]))
                    for row in rows
                ]

    async def iter_records(
        self, start: int = 0
    ) -> AsyncGenerator[list[StoredRecord], None]:
        """The records from ``start`` in seq order, ``CHUNK`` at a time."""
        pages = self._pages(SELECT_RECORDS, start)
        async with contextlib.aclosing(pages) as chunks:
            async for rows in chunks:
                yield [stored_record(row) for row in rows]


#: The records table's stored columns, in the order of :func:`columns`.
#: The columns searches read, derived from each record (records.search_columns).
SEARCH_COLUMNS = (
    "ts",
    "message_id",
    "client_id",
    "service_id",
    "decision",
    "subject_hash",
)
RECORD_COLUMNS = ("seq", "hash", "leaf_hash", "canonical", *SEARCH_COLUMNS)


def columns(r: SealedRecord) -> tuple[Any, ...]:
    """The values of :data:`RECORD_COLUMNS` for one row."""
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
    return StoredRecord(
        int(row[0]), str(row[1]), _blob(row[2]), _blob(row[3]), tuple(row[4:10])
    )


def _blob(value: Any) -> bytes:
    """The bytes of a BLOB column as stored.

    A value edited by hand (in the sqlite3 shell) comes back as TEXT, or as a
    number: its UTF-8 bytes are taken, so that the hash check reports the edit
    instead of the reader failing on it.
    """
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode("utf-8", "surrogateescape")


def archive_entry(row: Sequence[Any]) -> ArchiveEntry:
    """An :class:`ArchiveEntry` from a row of :data:`SELECT_ARCHIVES`."""
    return ArchiveEntry(
        name=str(row[0]),
        period=str(row[1]),
        period_end=float(row[2]),
        first_seq=int(row[3]),
        end_seq=int(row[4]),
        tree_size=int(row[5]),
        sha256=str(row[6]),
        created=float(row[7]),
    )


def archive_columns(entry: ArchiveEntry) -> tuple[Any, ...]:
    """The values of an ``archives`` row, in :data:`SELECT_ARCHIVES` order."""
    return (
        entry.name,
        entry.period,
        entry.period_end,
        entry.first_seq,
        entry.end_seq,
        entry.tree_size,
        entry.sha256,
        entry.created,
    )


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
