"""MessageLog.close(): cancelled on the way, and the sealer's role passing on."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gateway.msglog import KeySigner, MessageLog, SqliteLogStore
from gateway.msglog.postgres import PostgresLogStore
from gateway.msglog.records import SealedRecord
from gateway.msglog.store import SealFn
from tests.gateway.msglog.conftest import Backend, make_record

pytestmark = pytest.mark.anyio

#: A bound on waits, so that a hang fails the test rather than the run; never
#: reached when the log behaves.
STUCK_S = 15.0


class HeldStore(SqliteLogStore):
    """An SQLite store whose writes wait until ``release`` is set."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.writing = asyncio.Event()
        self.release = asyncio.Event()
        self.closed = False

    async def append_sealing(
        self, seal: SealFn, *, flush: bool = True
    ) -> list[SealedRecord]:
        self.writing.set()
        await self.release.wait()
        return await super().append_sealing(seal, flush=flush)

    async def close(self) -> None:
        self.closed = True
        await super().close()


async def _cancel_close_during_a_write(
    tmp_path: Path,
) -> tuple[HeldStore, MessageLog, asyncio.Task[Any]]:
    store = HeldStore(tmp_path / "held.db")
    log = MessageLog(store, checkpoint_interval_s=3600)
    await log.start()
    append = asyncio.create_task(log.append(make_record(0)))
    await store.writing.wait()
    closing = asyncio.create_task(log.close())
    await asyncio.sleep(0)  # close() is now waiting for the writer
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    store.release.set()
    return store, log, append


async def test_a_close_cancelled_during_a_write_can_be_finished_later(
    tmp_path: Path,
) -> None:
    store, log, append = await _cancel_close_during_a_write(tmp_path)
    try:
        await asyncio.wait_for(log.close(), STUCK_S)
    finally:
        append.cancel()
        await store.close()

    assert store.closed


async def test_an_append_in_a_write_cut_by_a_cancelled_close_is_answered(
    tmp_path: Path,
) -> None:
    store, log, append = await _cancel_close_during_a_write(tmp_path)
    writer = log._writer
    try:
        # Once no writer runs, nothing else would ever answer the append.
        if writer is not None:
            await asyncio.wait([writer, append], timeout=STUCK_S)
        for _ in range(5):
            await asyncio.sleep(0)
        answered = append.done()
    finally:
        append.cancel()
        await store.close()

    # The writer was not cancelled with close(): it finished the batch.
    assert answered
    assert append.exception() is None
    assert append.result().seq == 0


# -- the sealer's role across nodes (PostgreSQL) ----------------------------------


async def _checkpoint_by(store: PostgresLogStore, origin: str, size: int) -> None:
    """Wait until a checkpoint of at least ``size`` records by ``origin`` is stored."""
    async with asyncio.timeout(STUCK_S):
        for _ in itertools.count():
            latest = await store.latest_checkpoint()
            if latest and (latest.origin, latest.tree_size >= size) == (origin, True):
                return
            await asyncio.sleep(0.02)


@pytest.mark.postgres
async def test_another_node_seals_once_the_sealer_node_has_closed(
    pg: Backend, signer: KeySigner
) -> None:
    first = MessageLog(
        pg.store(), signer=signer, checkpoint_interval_s=0.02, origin="node-a"
    )
    second = MessageLog(
        pg.store(), signer=signer, checkpoint_interval_s=0.02, origin="node-b"
    )
    await first.start()
    assert await first.checkpoint() is None  # nothing yet, but the role is taken
    await second.start()
    reader = PostgresLogStore(pg.dsn or "", schema=pg.schema)
    await reader.open()
    try:
        for i in range(5):
            await second.append(make_record(i))
        await _checkpoint_by(reader, "node-a", 5)
        await first.close()
        for i in range(5, 9):
            await second.append(make_record(i))
        await _checkpoint_by(reader, "node-b", 9)
    finally:
        await second.close()
        await first.close()
        await reader.close()


@pytest.mark.postgres
async def test_two_stores_in_one_process_elect_one_sealer(pg: Backend) -> None:
    first, second = pg.store(), pg.store()
    await first.open()
    await second.open()
    try:
        claims = await asyncio.gather(first.claim_sealer(), second.claim_sealer())
        again = [await first.claim_sealer(), await second.claim_sealer()]
    finally:
        await first.close()
        await second.close()

    assert sorted(claims) == [False, True]
    assert again == list(claims)


@pytest.mark.postgres
async def test_a_sealer_connection_the_server_ended_lets_another_node_seal(
    pg: Backend, postgres_dsn: str
) -> None:
    first = pg.store()
    second = pg.store()
    assert isinstance(first, PostgresLogStore)
    await first.open()
    await second.open()
    admin = await asyncpg.connect(postgres_dsn)
    try:
        assert await first.claim_sealer()
        assert not await second.claim_sealer()
        assert first._sealer is not None
        pid = first._sealer.get_server_pid()
        await admin.execute("SELECT pg_terminate_backend($1)", pid)
        # The call only signals the backend: its lock goes when its process does.
        async with asyncio.timeout(STUCK_S):
            gone = "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $1"
            for _ in itertools.count():
                if await admin.fetchval(gone, pid):
                    break
                await asyncio.sleep(0.02)
        taken = await second.claim_sealer()
        # The ended session is noticed at the latest when the socket is read.
        async with asyncio.timeout(STUCK_S):
            for _ in itertools.count():
                if first._sealer.is_closed():
                    break
                await asyncio.sleep(0.02)
        still = await first.claim_sealer()
    finally:
        await admin.close()
        await first.close()
        await second.close()

    assert taken is True
    assert still is False
