"""Operational monitoring: one record per exchange, kept for a configured time.

The fields are those of X-Road's operational monitoring that apply to this node
(``requestInTs``, ``responseOutTs``, client and service ids, message and request
ids, sizes, status, success and fault code), plus the time of each pipeline step.
A record never holds the request path, the query, a body, a token or a student
id: the endpoint is named by the access rule that matched it.

Records are written off the hot path: :meth:`OpMonitor.observe` only puts the
record on a bounded queue; one writer task stores them in batches in SQLite. When
the queue is full the record is dropped and counted in :attr:`OpMonitor.dropped`,
so a slow disk never slows an exchange.

:meth:`OpMonitor.close` stores what is queued, records observed while it waits
included, until the writer finds the queue empty; from then on a record is
dropped and counted as well. Only after the writer thread's last write does it
close the connection, on that thread.

The writer stores at most once per ``write_interval_ms``: after it takes a record
it waits out the interval, or until a full batch is queued, and then writes what
is queued, up to a full batch, in one transaction. Monitoring data is for
operators, not part of an exchange's durability (X-Road buffers and flushes it
the same way), and one thread round trip per interval costs far less than one
per exchange. So :meth:`OpMonitor.query` and :meth:`OpMonitor.summary` see a
record up to the interval (plus a write or two) after its exchange;
:meth:`OpMonitor.flush` cuts the wait short. An interval of 0 writes as soon as
the writer is free.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson
import structlog

from gateway.errors import NodeError, Reason
from gateway.privatefiles import create_private_file
from gateway.record import Decision, ExchangeRecord
from gateway.sqlitebatch import WriterThread, insert_rows

log = structlog.get_logger("gateway.monitoring")

_BATCH: Final = 500
#: Records queued besides the one the writer holds that make a full batch.
_FULL_QUEUE: Final = _BATCH - 1
_PRUNE_EVERY_S: Final = 3600.0
MAX_PAGE: Final = 1000

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS op_records (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    request_in_ts       REAL NOT NULL,
    response_out_ts     REAL NOT NULL,
    message_id          TEXT NOT NULL,
    request_id          TEXT NOT NULL,
    client_id           TEXT,
    user_id             TEXT,
    service_id          TEXT,
    rule_id             TEXT,
    method              TEXT NOT NULL,
    purpose             TEXT,
    request_size        INTEGER NOT NULL,
    response_size       INTEGER NOT NULL,
    status              INTEGER NOT NULL,
    decision            TEXT NOT NULL,
    succeeded           INTEGER NOT NULL,
    fault_code          TEXT,
    upstream_status     INTEGER,
    upstream_attempts   INTEGER NOT NULL,
    total_ms            REAL NOT NULL,
    steps_ms            TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS op_records_ts ON op_records (request_in_ts);
CREATE INDEX IF NOT EXISTS op_records_client ON op_records (client_id, request_in_ts);
"""

_COLUMNS: Final = (
    "request_in_ts",
    "response_out_ts",
    "message_id",
    "request_id",
    "client_id",
    "user_id",
    "service_id",
    "rule_id",
    "method",
    "purpose",
    "request_size",
    "response_size",
    "status",
    "decision",
    "succeeded",
    "fault_code",
    "upstream_status",
    "upstream_attempts",
    "total_ms",
    "steps_ms",
)

_SUCCESS: Final = frozenset({Decision.FORWARDED, Decision.SERVED})


def op_record(record: ExchangeRecord) -> dict[str, Any]:
    """The monitoring form of an exchange record: no path, query or body."""
    total = record.total_ms()
    succeeded = record.decision in _SUCCESS and record.status < 500
    return {
        "request_in_ts": round(record.started, 6),
        "response_out_ts": round(record.started + total / 1000, 6),
        "message_id": record.message_id,
        "request_id": record.request_id,
        "client_id": record.client_id,
        "user_id": record.user_id,
        "service_id": record.service_id,
        "rule_id": record.rule_id,
        "method": record.method,
        "purpose": record.purpose,
        "request_size": record.request_bytes,
        "response_size": record.response_bytes,
        "status": record.status,
        "decision": record.decision.value,
        "succeeded": succeeded,
        "fault_code": None if record.decision in _SUCCESS else record.reason,
        "upstream_status": record.upstream_status,
        "upstream_attempts": record.upstream_attempts,
        "total_ms": total,
        "steps_ms": dict(record.durations_ms),
    }


@dataclass(frozen=True, slots=True)
class OpQuery:
    """A time window ``[since, until)``, optionally one client's, one page long."""

    since: float
    until: float
    client_id: str | None = None
    after_id: int = 0
    limit: int = 100


@dataclass(frozen=True, slots=True)
class OpPage:
    records: list[dict[str, Any]]
    #: Pass as ``after_id`` for the next page; None on the last page.
    next_after: int | None


class OpMonitor:
    """The bounded queue, the batch writer and the queries of one node."""

    def __init__(
        self,
        path: Path,
        *,
        retention_days: int,
        queue_size: int,
        write_interval_ms: float = 0.0,
    ) -> None:
        self._path = path
        self._retention_s = retention_days * 86400.0
        self._interval_s = write_interval_ms / 1000
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(queue_size)
        #: Queued records that end the writer's wait: a full batch, or a full
        #: queue when it holds less than a batch (it would drop records meanwhile).
        self._full_at = min(_FULL_QUEUE, queue_size)
        #: Ends the writer's wait early: a full batch is queued or a flush waits.
        self._wake = asyncio.Event()
        self._flushing = 0
        #: close() has begun: the writer stops once the queue is empty.
        self._closing = False
        #: The writer takes records: false once it has stopped after close().
        self._accepting = True
        #: The writer waits in ``queue.get()`` and holds no record.
        self._parked = False
        self._writer: asyncio.Task[None] | None = None
        self._conn: sqlite3.Connection | None = None
        self._last_prune = 0.0
        #: The writer's connection lives on a thread of its own.
        self._thread = WriterThread("opmon-writer")
        self.dropped = 0
        self.written = 0

    async def start(self) -> None:
        """Create the store and start the writer.

        :raises NodeError: ``log_unavailable`` if the store's directory cannot be
            made or SQLite cannot open the store.
        """
        try:
            self._conn = await self._thread.run(_connect, self._path)
        except (sqlite3.Error, OSError) as exc:
            raise NodeError(Reason.LOG_UNAVAILABLE, log_reason="opmon_open") from exc
        self._closing, self._accepting = False, True
        self._writer = asyncio.create_task(self._write_loop(), name="opmon-writer")
        self._writer.add_done_callback(self._writer_ended)

    async def close(self) -> None:
        """Store what is queued, stop the writer, then close the store.

        Records observed until the writer finds the queue empty are stored too;
        later ones are dropped and counted.
        """
        writer = self._writer
        if writer is not None:
            self._closing = True
            self._wake.set()
            if self._parked and self._queue.empty():
                # It waits for a record and holds none, so nothing is lost.
                self._accepting = False
                writer.cancel()
            # Not ``await writer``: that would swallow a cancellation of close().
            await asyncio.wait([writer])
            self._writer = None
        self._accepting = False

        conn, self._conn = self._conn, None
        if conn is not None:
            # On the writer's thread, after its last write: never beside one.
            # Shielded: a cancelled close() still closes the store, and a later
            # close() stops the thread.
            await asyncio.shield(self._thread.run(conn.close))
        self._thread.stop()

    def observe(self, record: ExchangeRecord) -> None:
        """Queue the monitoring record of a finished exchange; never blocks.

        Besides the put, one length check: a full batch ends the writer's wait.
        """
        if not self._accepting:
            self.dropped += 1
            return
        queue = self._queue
        try:
            queue.put_nowait(op_record(record))
        except asyncio.QueueFull:
            self.dropped += 1
            return
        if queue.qsize() >= self._full_at:
            self._wake.set()

    async def flush(self) -> None:
        """Wait until every queued record is stored.

        The writer does not wait out its interval while a flush is waiting, so
        records observed meanwhile are written at once too. Returns at once when
        no writer runs (before start, after close, or after it failed).
        """
        writer = self._writer
        if writer is None or writer.done():
            return
        self._flushing += 1
        self._wake.set()
        stored = asyncio.ensure_future(self._queue.join())
        try:
            # A writer that died stores nothing more: do not wait for it.
            await asyncio.wait([stored, writer], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stored.cancel()
            self._flushing -= 1

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    async def query(self, query: OpQuery) -> OpPage:
        """One page of records in the window, oldest first.

        :raises NodeError: ``log_unavailable`` if the store cannot be read.
        """
        limit = max(1, min(query.limit, MAX_PAGE))
        try:
            rows = await asyncio.to_thread(_select, self._path, query, limit + 1)
        except sqlite3.Error as exc:
            raise NodeError(Reason.LOG_UNAVAILABLE, log_reason="opmon_read") from exc
        more = len(rows) > limit
        rows = rows[:limit]
        next_after = rows[-1]["id"] if more else None
        return OpPage(rows, next_after)

    async def summary(self, since: float, until: float) -> dict[str, Any]:
        """Traffic, denials and latency percentiles in ``[since, until)``.

        :raises NodeError: ``log_unavailable`` if the store cannot be read.
        """
        try:
            return await asyncio.to_thread(_summary, self._path, since, until)
        except sqlite3.Error as exc:
            raise NodeError(Reason.LOG_UNAVAILABLE, log_reason="opmon_read") from exc

    async def _write_loop(self) -> None:
        """Store batches until close() has begun and the queue is empty."""
        queue = self._queue
        while not (self._closing and queue.empty()):
            self._parked = True
            batch = [await queue.get()]
            self._parked = False
            await self._gather()
            while len(batch) < _BATCH and not queue.empty():
                batch.append(queue.get_nowait())
            await self._store(batch)
        # No await since the check: observe() had no chance to queue a record.
        self._accepting = False

    def _writer_ended(self, writer: asyncio.Task[None]) -> None:
        """A writer that failed stores nothing more: later records are dropped
        and counted, and the failure is logged by its type."""
        self._accepting = False
        if not writer.cancelled() and (error := writer.exception()) is not None:
            log.error("opmon.writer_failed", error=type(error).__name__)

    async def _gather(self) -> None:
        """Wait for the write interval, a full batch, a flush or close()."""
        if self._interval_s <= 0 or self._flushing or self._closing:
            return
        if self._queue.qsize() >= self._full_at:
            return
        # No await since the checks above, so a wake-up cannot fall in between.
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._interval_s):
                await self._wake.wait()

    async def _store(self, batch: list[dict[str, Any]]) -> None:
        """Write ``batch`` in one transaction on the writer thread; count the result."""
        try:
            await self._thread.run(self._write, batch)
            self.written += len(batch)
        except sqlite3.Error as exc:
            self.dropped += len(batch)
            log.warning("opmon.write_failed", error=type(exc).__name__)
        finally:
            for _ in batch:
                self._queue.task_done()

    def _write(self, batch: list[dict[str, Any]]) -> None:
        conn = self._conn
        if conn is None:
            raise sqlite3.OperationalError("closed")
        with conn:
            # A statement per chunk, not per row (gateway.sqlitebatch).
            insert_rows(conn, "op_records", _COLUMNS, [_row(item) for item in batch])
            now = time.time()
            if now - self._last_prune >= _PRUNE_EVERY_S:
                conn.execute(
                    "DELETE FROM op_records WHERE request_in_ts < ?",
                    (now - self._retention_s,),
                )
                self._last_prune = now

    async def prune(self, now: float | None = None) -> int:
        """Delete records older than the retention time; return how many.

        On the writer's thread, as every use of the connection is, so never beside
        a write. The writer also prunes on its own, at most hourly.
        """
        if self._conn is None:
            return 0
        cutoff = (now if now is not None else time.time()) - self._retention_s
        return await self._thread.run(self._prune, cutoff)

    def _prune(self, cutoff: float) -> int:
        conn = self._conn
        if conn is None:
            return 0
        with conn:
            cursor = conn.execute(
                "DELETE FROM op_records WHERE request_in_ts < ?", (cutoff,)
            )
        return cursor.rowcount


def _connect(path: Path) -> sqlite3.Connection:
    create_private_file(path)
    conn = sqlite3.connect(path, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(_SCHEMA)
    return conn


def _row(item: dict[str, Any]) -> tuple[Any, ...]:
    values = dict(item)
    values["succeeded"] = int(bool(values["succeeded"]))
    values["steps_ms"] = orjson.dumps(values["steps_ms"]).decode()
    return tuple(values[c] for c in _COLUMNS)


def _select(path: Path, query: OpQuery, limit: int) -> list[dict[str, Any]]:
    clauses = ["id > ?", "request_in_ts >= ?", "request_in_ts < ?"]
    params: list[Any] = [query.after_id, query.since, query.until]
    if query.client_id is not None:
        clauses.append("client_id = ?")
        params.append(query.client_id)
    params.append(limit)
    sql = (
        # Only fixed column names and clauses are interpolated.
        f"SELECT id, {', '.join(_COLUMNS)} FROM op_records "  # noqa: S608
        f"WHERE {' AND '.join(clauses)} ORDER BY id LIMIT ?"
    )
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        rows = conn.execute(sql, params).fetchall()
    finally:
        conn.close()
    return [_from_row(row) for row in rows]


def _from_row(row: tuple[Any, ...]) -> dict[str, Any]:
    item = dict(zip(("id", *_COLUMNS), row, strict=True))
    item["succeeded"] = bool(item["succeeded"])
    item["steps_ms"] = orjson.loads(item["steps_ms"])
    return item


_PERCENTILES: Final = (50, 90, 95, 99)
_LATENCY_SAMPLE: Final = 200_000


def _summary(path: Path, since: float, until: float) -> dict[str, Any]:
    window = "FROM op_records WHERE request_in_ts >= ? AND request_in_ts < ?"
    params = (since, until)
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        traffic = conn.execute(
            f"SELECT client_id, service_id, COUNT(*) {window} "
            "GROUP BY client_id, service_id ORDER BY COUNT(*) DESC",
            params,
        ).fetchall()
        decisions = conn.execute(
            f"SELECT decision, COUNT(*) {window} GROUP BY decision",
            params,
        ).fetchall()
        denials = conn.execute(
            f"SELECT fault_code, COUNT(*) {window} "
            "AND decision = 'denied' GROUP BY fault_code ORDER BY COUNT(*) DESC",
            params,
        ).fetchall()
        latencies = [
            row[0]
            for row in conn.execute(
                f"SELECT total_ms {window} ORDER BY total_ms LIMIT ?",
                (*params, _LATENCY_SAMPLE),
            )
        ]
    finally:
        conn.close()
    return {
        "since": since,
        "until": until,
        "traffic": [
            {"client_id": c, "service_id": s, "count": n} for c, s, n in traffic
        ],
        "decisions": dict(decisions),
        "denials": [{"reason": r, "count": n} for r, n in denials],
        "latency_ms": _percentiles(latencies),
        "exchanges": sum(n for _, n in decisions),
    }


def _percentiles(ordered: list[float]) -> dict[str, float | None]:
    if not ordered:
        return {f"p{p}": None for p in _PERCENTILES}
    last = len(ordered) - 1
    return {f"p{p}": ordered[min(last, round(last * p / 100))] for p in _PERCENTILES}
