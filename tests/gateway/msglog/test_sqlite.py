"""The SQLite store: which thread commits a batch, and the write-ahead log's size."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from gateway.msglog import MessageLog, SqliteLogStore
from gateway.msglog import sqlite as sqlite_store
from gateway.msglog.records import SealedRecord
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


async def test_database_thread_checkpoints_the_write_ahead_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection never checkpoints on commit; the database thread does."""
    sizes = {}
    for name, every in (("checkpointed", 20), ("never", 10**9)):
        monkeypatch.setattr(sqlite_store, "CHECKPOINT_RECORDS", every)
        path = tmp_path / f"{name}.db"
        log = MessageLog(SqliteLogStore(path))
        await log.start()
        for i in range(200):
            await log.append(make_record(2 * i), flush=False)
            await log.append(make_record(2 * i + 1))
        sizes[name] = await asyncio.to_thread(os.path.getsize, f"{path}-wal")
        await log.close()

    assert sizes["checkpointed"] * 4 < sizes["never"]
