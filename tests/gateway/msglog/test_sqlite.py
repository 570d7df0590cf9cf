"""The SQLite store: which thread commits a batch, and the write-ahead log's size."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.msglog import MessageLog, SqliteLogStore
from gateway.msglog.records import SealedRecord, seal
from gateway.msglog.store import LogTail
from gateway.msglog.verify import verify_log
from tests.gateway.msglog.conftest import make_record

pytestmark = pytest.mark.anyio


def _threads_of(store: SqliteLogStore, seen: list[int]) -> None:
    """Record the thread every batch of ``store`` is sealed on."""
    append = store._append_sync

    def spying(seal: object, flush: bool) -> list[SealedRecord]:
        seen.append(threading.get_ident())
        return append(seal, flush)  # type: ignore[arg-type]

    store._append_sync = spying  # type: ignore[method-assign]


async def test_unflushed_batch_commits_on_the_calling_thread(tmp_path: Path) -> None:
    """A batch that need not be synced does not go to the database thread."""
    store = SqliteLogStore(tmp_path / "log.db")
    log = MessageLog(store)
    await log.start()
    seen: list[int] = []
    _threads_of(store, seen)

    await log.append(make_record(0), flush=False)
    await log.append(make_record(1))
    await log.close()

    here = threading.get_ident()
    assert seen[0] == here
    assert seen[1] != here
    check = SqliteLogStore(tmp_path / "log.db")
    await check.open()
    report = await verify_log(check, {})
    await check.close()
    assert report.ok, report


async def test_unflushed_batch_waits_for_a_busy_connection(tmp_path: Path) -> None:
    """While the database thread holds the connection, the batch queues behind it."""
    store = SqliteLogStore(tmp_path / "log.db")
    await store.open()
    seen: list[int] = []
    _threads_of(store, seen)
    release = threading.Event()
    busy = asyncio.ensure_future(store._run("busy", release.wait, 5))
    await asyncio.sleep(0.05)  # the database thread now holds the lock

    def seal(tail: LogTail) -> list[SealedRecord]:
        return []

    append = asyncio.ensure_future(store.append_sealing(seal, flush=False))
    await asyncio.sleep(0.05)
    assert not append.done()
    release.set()
    await asyncio.gather(busy, append)
    await store.close()

    assert seen
    assert seen[0] != threading.get_ident()


async def test_many_small_batches_keep_the_write_ahead_log_small(
    tmp_path: Path,
) -> None:
    """Inline commits never checkpoint, the flushed ones on the thread do."""
    path = tmp_path / "log.db"
    log = MessageLog(SqliteLogStore(path))
    await log.start()
    for i in range(500):
        await log.append(make_record(2 * i), flush=False)
        await log.append(make_record(2 * i + 1))
    size = await asyncio.to_thread(os.path.getsize, f"{path}-wal")
    await log.close()

    # 1,000 pages of 4 KiB and the commit that crossed them; unchecked, ~25 MB.
    assert size < 6 * 1024 * 1024


def _seal_one(body: bytes | None = None) -> Callable[[LogTail], list[SealedRecord]]:
    """A seal function that stores one record after the tail, with ``body``."""

    def sealing(tail: LogTail) -> list[SealedRecord]:
        row = seal(make_record(tail.size), tail.size, tail.last_hash)
        return [dataclasses.replace(row, bodies=body)]

    return sealing


async def test_unflushed_batch_never_waits_on_the_loop_for_another_writer(
    tmp_path: Path,
) -> None:
    """Another connection's write lock sends the batch to the database thread."""
    path = tmp_path / "log.db"
    store = SqliteLogStore(path)
    await store.open()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # as `mediator log archive` pruning
    asyncio.get_running_loop().call_later(0.05, other.execute, "ROLLBACK")

    rows = await store.append_sealing(_seal_one(), flush=False)

    other.close()
    assert (await store.tail()).size == 1
    await store.close()
    assert [row.seq for row in rows] == [0]


async def test_write_ahead_log_is_checkpointed_by_size_too(tmp_path: Path) -> None:
    """Large bodies do not grow the write-ahead log past its checkpoint size."""
    path = tmp_path / "log.db"
    store = SqliteLogStore(path)
    await store.open()
    for _ in range(100):
        await store.append_sealing(_seal_one(os.urandom(200_000)))
    size = os.stat(f"{path}-wal").st_size
    await store.close()

    assert size < 8 * 1024 * 1024
