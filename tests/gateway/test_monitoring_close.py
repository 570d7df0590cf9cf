"""OpMonitor.close(), adversarially: twice, concurrently, cancelled, then started
again; nothing queued is lost and the store ends up closed."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from pathlib import Path

import pytest
import structlog

from gateway import monitoring
from gateway.monitoring import OpMonitor, OpQuery
from gateway.record import ExchangeRecord

pytestmark = pytest.mark.anyio

#: A write interval no test waits out: only close() or flush() ends the wait.
_LONG_MS = 600_000.0
#: A bound on waits that should end at once; never a measured duration.
_PROMPT_S = 10.0


def _record() -> ExchangeRecord:
    return ExchangeRecord(
        node_id="WB/GOV/SED/mediator-1",
        method="GET",
        path="/r1/WB/GOV/SED/banglarshiksha/students",
        peer="127.0.0.1",
    )


def _monitor(tmp_path: Path, interval_ms: float = _LONG_MS) -> OpMonitor:
    return OpMonitor(
        tmp_path / "op.db",
        retention_days=1,
        queue_size=100,
        write_interval_ms=interval_ms,
    )


async def _started(
    tmp_path: Path, observed: int = 0
) -> tuple[OpMonitor, sqlite3.Connection]:
    """A started monitor with ``observed`` records queued, and its connection."""
    monitor = _monitor(tmp_path)
    await monitor.start()
    conn = monitor._conn
    assert conn is not None
    for _ in range(observed):
        monitor.observe(_record())
    return monitor, conn


async def _stored(tmp_path: Path) -> int:
    reader = OpMonitor(tmp_path / "op.db", retention_days=1, queue_size=1)
    page = await reader.query(OpQuery(since=0, until=time.time() + 1))
    return len(page.records)


def _is_closed(conn: sqlite3.Connection) -> bool:
    try:
        conn.execute("SELECT 1")
    except sqlite3.ProgrammingError:
        return True
    return False


async def _turns(count: int = 20) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def test_close_twice_is_harmless(tmp_path: Path) -> None:
    monitor = _monitor(tmp_path)
    await monitor.start()
    monitor.observe(_record())

    await asyncio.wait_for(monitor.close(), _PROMPT_S)
    await asyncio.wait_for(monitor.close(), _PROMPT_S)

    assert (monitor.written, monitor.dropped) == (1, 0)
    assert await _stored(tmp_path) == 1


async def test_close_before_start_is_harmless(tmp_path: Path) -> None:
    monitor = _monitor(tmp_path)

    await asyncio.wait_for(monitor.close(), _PROMPT_S)
    monitor.observe(_record())

    assert monitor.dropped == 1


async def test_two_concurrent_closes_both_return_and_store_everything(
    tmp_path: Path,
) -> None:
    monitor, conn = await _started(tmp_path, observed=3)

    await asyncio.wait_for(asyncio.gather(monitor.close(), monitor.close()), _PROMPT_S)

    assert (monitor.written, monitor.dropped) == (3, 0)
    assert _is_closed(conn)
    assert await _stored(tmp_path) == 3


async def test_a_flush_waiting_as_close_drains_returns(tmp_path: Path) -> None:
    monitor = _monitor(tmp_path)
    await monitor.start()
    for _ in range(3):
        monitor.observe(_record())
    await _turns()  # the writer holds one record and waits out its interval

    await asyncio.wait_for(asyncio.gather(monitor.flush(), monitor.close()), _PROMPT_S)

    assert (monitor.written, monitor.dropped) == (3, 0)


async def test_flush_after_close_returns_at_once(tmp_path: Path) -> None:
    monitor = _monitor(tmp_path)
    await monitor.start()
    monitor.observe(_record())
    await asyncio.wait_for(monitor.close(), _PROMPT_S)
    monitor.observe(_record())

    await asyncio.wait_for(monitor.flush(), _PROMPT_S)

    assert (monitor.written, monitor.dropped, monitor.queued) == (1, 1, 0)


async def test_start_after_close_stores_again(tmp_path: Path) -> None:
    """Closed while idle (the writer cancelled), started, closed while busy."""
    monitor = _monitor(tmp_path)
    await monitor.start()
    await _turns()
    await asyncio.wait_for(monitor.close(), _PROMPT_S)
    monitor.observe(_record())  # between the two lives: dropped

    await monitor.start()
    monitor.observe(_record())
    monitor.observe(_record())
    await asyncio.wait_for(monitor.close(), _PROMPT_S)

    assert (monitor.written, monitor.dropped) == (2, 1)
    assert await _stored(tmp_path) == 2


async def test_close_at_once_after_start_loses_nothing(tmp_path: Path) -> None:
    """close() before the writer task ever ran: the queued record is stored."""
    monitor = _monitor(tmp_path)
    await monitor.start()
    monitor.observe(_record())

    await asyncio.wait_for(monitor.close(), _PROMPT_S)

    assert (monitor.written, monitor.dropped) == (1, 0)


async def test_a_close_cancelled_while_draining_is_finished_by_the_next(
    tmp_path: Path,
) -> None:
    """The writer keeps draining; a second close() waits for it and closes."""
    monitor, conn = await _started(tmp_path, observed=5)
    await _turns()

    closing = asyncio.create_task(monitor.close())
    await asyncio.sleep(0)
    closing.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await closing
    # Stored if the writer has not found the queue empty yet, else dropped.
    monitor.observe(_record())
    await asyncio.wait_for(monitor.close(), _PROMPT_S)

    assert monitor.written + monitor.dropped == 6
    assert monitor.written >= 5
    assert _is_closed(conn)


async def test_a_close_cancelled_while_closing_the_store_leaves_it_closable(
    tmp_path: Path,
) -> None:
    monitor, conn = await _started(tmp_path)
    # Keep the writer thread busy so that close()'s conn.close waits its turn.
    gate = threading.Event()
    busy = asyncio.create_task(monitor._thread.run(gate.wait))
    try:
        closing = asyncio.create_task(monitor.close())
        for _ in range(1000):
            await asyncio.sleep(0)
            if monitor._conn is None:
                break
        assert monitor._conn is None, "close() did not reach the store's close"
        closing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await closing
    finally:
        gate.set()
        await asyncio.wait_for(busy, _PROMPT_S)

    await asyncio.wait_for(monitor.close(), _PROMPT_S)

    try:
        assert _is_closed(conn)
    finally:
        conn.close()


async def test_a_writer_that_fails_stops_taking_records_and_flush_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monitor, _conn = await _started(tmp_path, observed=1)

    def broken(_item: object) -> tuple[object, ...]:
        raise KeyError("status")

    monkeypatch.setattr(monitoring, "_row", broken)
    with structlog.testing.capture_logs() as logs:
        await asyncio.wait_for(monitor.flush(), _PROMPT_S)
        monitor.observe(_record())
        await asyncio.wait_for(monitor.close(), _PROMPT_S)

    assert (monitor.written, monitor.dropped) == (0, 1)
    failures = [e for e in logs if e["event"] == "opmon.writer_failed"]
    assert [e["error"] for e in failures] == ["KeyError"]
