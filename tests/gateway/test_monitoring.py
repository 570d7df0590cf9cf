"""Operational monitoring records: their form, queue, timed batches and retention."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gateway import monitoring
from gateway.monitoring import OpMonitor, OpQuery, op_record
from gateway.record import Decision, ExchangeRecord

pytestmark = pytest.mark.anyio


def _record(**values: object) -> ExchangeRecord:
    record = ExchangeRecord(
        node_id="WB/GOV/SED/mediator-1",
        method="GET",
        path="/r1/WB/GOV/SED/banglarshiksha/students/applicants/123456789012",
        peer="127.0.0.1",
    )
    for name, value in values.items():
        setattr(record, name, value)
    return record


def test_a_monitoring_record_has_no_path_query_or_peer() -> None:
    found = op_record(
        _record(client_id="WB/GOV/WCD/kanyashree", status=200, user_id="officer-17")
    )

    assert found["user_id"] == "officer-17"
    assert "path" not in found
    assert "peer" not in found
    assert "123456789012" not in str(found)


@pytest.mark.parametrize(
    ("decision", "status", "succeeded", "fault"),
    [
        (Decision.FORWARDED, 200, True, None),
        (Decision.FORWARDED, 503, False, None),
        (Decision.SERVED, 200, True, None),
        (Decision.DENIED, 403, False, "no_matching_rule"),
    ],
)
def test_success_and_fault_code_follow_the_decision(
    decision: Decision, status: int, succeeded: bool, fault: str | None
) -> None:
    found = op_record(
        _record(decision=decision, status=status, reason="no_matching_rule")
    )

    assert (found["succeeded"], found["fault_code"]) == (succeeded, fault)


async def test_a_full_queue_drops_and_counts(tmp_path: Path) -> None:
    monitor = OpMonitor(tmp_path / "op.db", retention_days=1, queue_size=2)

    for _ in range(5):
        monitor.observe(_record())

    assert (monitor.queued, monitor.dropped) == (2, 3)


async def test_records_older_than_the_retention_are_deleted(tmp_path: Path) -> None:
    monitor = OpMonitor(tmp_path / "op.db", retention_days=1, queue_size=10)
    await monitor.start()
    try:
        monitor.observe(_record(started=time.time() - 3 * 86400))
        monitor.observe(_record())
        await monitor.flush()
        page = await monitor.query(OpQuery(since=0, until=time.time() + 1))
    finally:
        await monitor.close()

    assert [r["request_in_ts"] > time.time() - 60 for r in page.records] == [True]


async def test_prune_deletes_what_the_retention_has_passed_at_a_given_time(
    tmp_path: Path,
) -> None:
    monitor = OpMonitor(tmp_path / "op.db", retention_days=1, queue_size=10)
    await monitor.start()
    try:
        monitor.observe(_record())
        await monitor.flush()
        kept = await monitor.prune()
        pruned = await monitor.prune(now=time.time() + 2 * 86400)
        page = await monitor.query(OpQuery(since=0, until=time.time() + 1))
    finally:
        await monitor.close()

    assert (kept, pruned, page.records) == (0, 1, [])


#: Long enough that a test waiting it out would hit the timeouts below.
_LONG_MS = 60_000.0
#: Generous bound for what must happen at once; not a measure of speed.
_PROMPT_S = 5.0


@dataclass
class _Watched:
    """A started monitor, the sizes of the batches it wrote, and when it waits."""

    monitor: OpMonitor
    batches: list[int] = field(default_factory=list)
    waiting: asyncio.Event = field(default_factory=asyncio.Event)

    async def writer_holds_one(self) -> None:
        """Observe one record and wait until the writer holds it and waits."""
        self.waiting.clear()
        self.monitor.observe(_record())
        await asyncio.wait_for(self.waiting.wait(), _PROMPT_S)

    async def written_without_flush(self) -> None:
        """Wait until every queued record is stored, leaving the writer alone."""
        await asyncio.wait_for(self.monitor._queue.join(), _PROMPT_S)


@asynccontextmanager
async def _watched(
    tmp_path: Path, interval_ms: float, queue_size: int = 10_000
) -> AsyncIterator[_Watched]:
    monitor = OpMonitor(
        tmp_path / "op.db",
        retention_days=1,
        queue_size=queue_size,
        write_interval_ms=interval_ms,
    )
    watched = _Watched(monitor)
    write, gather = monitor._write, monitor._gather

    def counted(batch: list[dict[str, Any]]) -> None:
        watched.batches.append(len(batch))
        write(batch)

    async def noted() -> None:
        watched.waiting.set()
        await gather()

    monitor._write = counted  # type: ignore[method-assign]
    monitor._gather = noted  # type: ignore[method-assign]
    await monitor.start()
    try:
        yield watched
    finally:
        await monitor.close()


async def _stored(tmp_path: Path) -> int:
    reader = OpMonitor(tmp_path / "op.db", retention_days=1, queue_size=1)
    page = await reader.query(OpQuery(since=0, until=time.time() + 1))
    return len(page.records)


async def test_records_within_the_interval_are_written_in_one_batch(
    tmp_path: Path,
) -> None:
    """Records observed while the writer waits are stored in one write."""
    async with _watched(tmp_path, 300.0) as watched:
        await watched.writer_holds_one()
        for _ in range(4):
            watched.monitor.observe(_record())
            await asyncio.sleep(0)
        await watched.written_without_flush()

    assert (watched.monitor.written, watched.batches) == (5, [5])


async def test_a_full_batch_is_written_without_waiting_for_the_interval(
    tmp_path: Path,
) -> None:
    """A full batch wakes the writer before a long interval ends."""
    async with _watched(tmp_path, _LONG_MS) as watched:
        await watched.writer_holds_one()
        for _ in range(monitoring._BATCH - 1):
            watched.monitor.observe(_record())
        await watched.written_without_flush()

    assert watched.batches == [monitoring._BATCH]


async def test_a_full_queue_smaller_than_a_batch_wakes_the_writer(
    tmp_path: Path,
) -> None:
    """A full queue is written at once, not left dropping records for the interval."""
    async with _watched(tmp_path, _LONG_MS, queue_size=10) as watched:
        await watched.writer_holds_one()
        for _ in range(10):
            watched.monitor.observe(_record())
        await watched.written_without_flush()

    assert (watched.monitor.dropped, watched.batches) == (0, [11])


async def test_flush_cuts_the_interval_short(tmp_path: Path) -> None:
    """flush() returns once everything queued is stored, not after the interval."""
    async with _watched(tmp_path, _LONG_MS) as watched:
        await watched.writer_holds_one()
        watched.monitor.observe(_record())
        watched.monitor.observe(_record())
        await asyncio.wait_for(watched.monitor.flush(), _PROMPT_S)

        assert (watched.monitor.written, watched.batches) == (3, [3])
        assert await _stored(tmp_path) == 3


async def test_close_stores_everything_queued(tmp_path: Path) -> None:
    """close() writes what is queued without waiting out the interval."""
    async with _watched(tmp_path, _LONG_MS) as watched:
        await watched.writer_holds_one()
        watched.monitor.observe(_record())
        watched.monitor.observe(_record())
        await asyncio.wait_for(watched.monitor.close(), _PROMPT_S)

    assert await _stored(tmp_path) == 3


async def test_interval_zero_writes_as_soon_as_the_writer_is_free(
    tmp_path: Path,
) -> None:
    """With no interval the first record is written alone, as before."""
    async with _watched(tmp_path, 0.0) as watched:
        await watched.writer_holds_one()
        watched.monitor.observe(_record())
        watched.monitor.observe(_record())
        await asyncio.wait_for(watched.monitor.flush(), _PROMPT_S)

    assert watched.batches == [1, 2]


def _observe_after_first_store(monitor: OpMonitor, *, yield_first: bool) -> None:
    """Make the writer observe one more record right after its first write.

    With ``yield_first`` each write first yields to the loop once, so close()
    runs between a batch being taken and being handed to the writer thread.
    """
    store = monitor._store
    stores = 0

    async def store_then_observe(batch: list[dict[str, Any]]) -> None:
        nonlocal stores
        if yield_first:
            await asyncio.sleep(0)
        await store(batch)
        stores += 1
        if stores == 1:
            monitor.observe(_record())

    monitor._store = store_then_observe  # type: ignore[method-assign]


@pytest.mark.parametrize("interval_ms", [0.0, _LONG_MS])
async def test_a_record_observed_while_close_writes_is_stored(
    tmp_path: Path, interval_ms: float
) -> None:
    """A record that arrives as close() drains the queue is written, not lost."""
    async with _watched(tmp_path, interval_ms) as watched:
        monitor = watched.monitor
        _observe_after_first_store(monitor, yield_first=True)
        monitor.observe(_record())
        await asyncio.wait_for(monitor.close(), _PROMPT_S)

    assert (monitor.written, monitor.dropped) == (2, 0)
    assert await _stored(tmp_path) == 2


class _HeldStore:
    """A started monitor's store whose second write waits on the writer thread.

    It stands in for the monitor's connection. Its close() notes whether that
    write is in progress, then lets it go and waits for it before closing the
    real connection: a close() that does not wait for the writer thread fails
    the test instead of crashing the interpreter.
    """

    def __init__(self, monitor: OpMonitor) -> None:
        assert monitor._conn is not None
        self.in_second_write = asyncio.Event()
        self.release = threading.Event()
        self.idle = threading.Event()
        self.idle.set()
        self.closed_while_writing: list[bool] = []
        self._loop = asyncio.get_running_loop()
        self._conn = monitor._conn
        self._write = monitor._write
        self._writes = 0
        monitor._conn = self  # type: ignore[assignment]
        monitor._write = self.write  # type: ignore[method-assign]

    def write(self, batch: list[dict[str, Any]]) -> None:
        """On the writer thread: hold the second write until released."""
        self.idle.clear()
        try:
            self._writes += 1
            if self._writes == 2:
                self._loop.call_soon_threadsafe(self.in_second_write.set)
                self.release.wait()
            self._write(batch)
        finally:
            self.idle.set()

    def __enter__(self) -> sqlite3.Connection:
        return self._conn.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._conn.__exit__(*exc)

    def execute(self, *args: Any) -> sqlite3.Cursor:
        return self._conn.execute(*args)

    def close(self) -> None:
        self.closed_while_writing.append(not self.idle.is_set())
        self.release.set()
        self.idle.wait()
        self._conn.close()


async def test_close_with_no_interval_waits_for_the_write_in_progress(
    tmp_path: Path,
) -> None:
    """close() closes the store only once the writer thread is done with it."""
    monitor = OpMonitor(
        tmp_path / "op.db", retention_days=1, queue_size=10, write_interval_ms=0.0
    )
    _observe_after_first_store(monitor, yield_first=False)
    await monitor.start()
    store = _HeldStore(monitor)

    monitor.observe(_record())
    closing = asyncio.create_task(monitor.close())
    try:
        await asyncio.wait_for(store.in_second_write.wait(), _PROMPT_S)
    finally:
        store.release.set()
        await asyncio.wait_for(closing, _PROMPT_S)

    assert store.closed_while_writing == [False]
    assert await _stored(tmp_path) == 2


@pytest.mark.parametrize("idle", [False, True], ids=["draining", "idle"])
async def test_a_record_observed_after_close_is_dropped_and_counted(
    tmp_path: Path, idle: bool
) -> None:
    """Once the writer has stopped, a record is counted as dropped, not queued.

    The writer stops after draining the queue, or at once when it is idle.
    """
    monitor = OpMonitor(tmp_path / "op.db", retention_days=1, queue_size=10)
    await monitor.start()
    monitor.observe(_record())
    if idle:
        await asyncio.wait_for(monitor.flush(), _PROMPT_S)
    await asyncio.wait_for(monitor.close(), _PROMPT_S)

    monitor.observe(_record())

    assert (monitor.written, monitor.dropped, monitor.queued) == (1, 1, 0)
