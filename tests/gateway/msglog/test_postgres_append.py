"""PostgreSQL appends on their own connection: contention, cancellation, odd rows."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import random
from collections.abc import Callable
from typing import Any, cast

import asyncpg
import orjson
import pytest

from gateway.msglog import KeySigner, MessageLog, load_jwks, verify_log
from gateway.msglog.postgres import PostgresLogStore
from gateway.msglog.records import SealedRecord, seal
from gateway.msglog.store import LogTail, StoreError
from tests.gateway.msglog.conftest import Backend, make_record

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

#: A bound on waits for another writer, so that a lock left held fails the test
#: rather than hanging it; never reached when the lock is free.
STUCK_S = 15.0


def sealing(
    count: int, make: Callable[[int], dict[str, Any]] = make_record
) -> Callable[[LogTail], list[SealedRecord]]:
    """A seal function for ``count`` records of ``make`` after the tail."""

    def seal_after(tail: LogTail) -> list[SealedRecord]:
        rows, prev = [], tail.last_hash
        for seq in range(tail.size, tail.size + count):
            rows.append(seal(make(seq), seq, prev))
            prev = rows[-1].hash
        return rows

    return seal_after


async def opened(backend: Backend) -> PostgresLogStore:
    store = cast(PostgresLogStore, backend.store())
    await store.open()
    return store


async def assert_chain(store: PostgresLogStore, size: int) -> None:
    """Records 0..size-1 are stored once each, each chained to the one before."""
    rows = await store.get_range(0, size + 10)
    assert [r.seq for r in rows] == list(range(size))
    assert (await store.tail()).size == size
    prev = ""
    for row in rows:
        record = orjson.loads(row.canonical)
        assert (record["seq"], record["prev_hash"]) == (row.seq, prev)
        assert hashlib.sha256(row.canonical).hexdigest() == row.hash
        prev = row.hash


# -- rows of every shape ------------------------------------------------------------


async def test_a_batch_of_no_rows_commits_and_the_next_starts_at_zero(
    pg: Backend,
) -> None:
    store = await opened(pg)
    try:
        empty = await store.append_sealing(lambda _tail: [])
        rows = await store.append_sealing(sealing(2))
        await assert_chain(store, 2)
    finally:
        await store.close()

    assert empty == []
    assert [r.seq for r in rows] == [0, 1]


async def test_null_columns_are_stored_as_null(pg: Backend) -> None:
    def bare(i: int) -> dict[str, Any]:
        return {**make_record(i), "client_id": None, "service_id": None}

    store = await opened(pg)
    try:
        await store.append_sealing(sealing(3, bare))
        assert store._pool is not None
        rows = await store._pool.fetch(
            "SELECT client_id, service_id, subject_hash FROM records ORDER BY seq"
        )
        await assert_chain(store, 3)
    finally:
        await store.close()

    assert [tuple(row) for row in rows] == [(None, None, None)] * 3


async def test_bodies_are_stored_only_for_the_rows_that_have_them(
    pg: Backend,
) -> None:
    def with_bodies(tail: LogTail) -> list[SealedRecord]:
        rows = sealing(4)(tail)
        return [
            r if r.seq % 2 else dataclasses.replace(r, bodies=b"b%d" % r.seq)
            for r in rows
        ]

    store = await opened(pg)
    try:
        await store.append_sealing(with_bodies)
        await store.append_sealing(sealing(2))
        stored = await store.bodies(list(range(6)))
    finally:
        await store.close()

    assert stored == {0: b"b0", 2: b"b2"}


async def test_a_very_large_batch_is_one_insert(pg: Backend) -> None:
    store = await opened(pg)
    try:
        rows = await store.append_sealing(sealing(5000))
        await assert_chain(store, 5000)
        transactions = store.transactions
    finally:
        await store.close()

    assert len(rows) == 5000
    assert transactions == 1


@pytest.mark.parametrize("order", [(False, True), (True, False), (False, False)])
async def test_flushed_and_unflushed_batches_chain_alike(
    pg: Backend, order: tuple[bool, bool]
) -> None:
    store = await opened(pg)
    try:
        for flush in order:
            await store.append_sealing(sealing(3), flush=flush)
        await assert_chain(store, 6)
    finally:
        await store.close()


async def test_unflushed_setting_does_not_outlive_its_transaction(
    pg: Backend,
) -> None:
    store = await opened(pg)
    try:
        await store.append_sealing(sealing(1), flush=False)
        writer = store._writer
        assert writer is not None
        setting = await writer.fetchval("SHOW synchronous_commit")
    finally:
        await store.close()

    assert setting == "on"


# -- several writers -------------------------------------------------------------


async def test_concurrent_stores_write_one_contiguous_chain(pg: Backend) -> None:
    stores = [await opened(pg) for _ in range(4)]
    sizes = random.Random(7).choices(range(1, 40), k=40)
    try:
        await asyncio.gather(
            *(
                stores[n % 4].append_sealing(sealing(size), flush=bool(n % 3))
                for n, size in enumerate(sizes)
            )
        )
        await assert_chain(stores[0], sum(sizes))
    finally:
        for store in stores:
            await store.close()


async def test_three_nodes_with_group_commit_make_a_verifiable_log(
    pg: Backend, signer: KeySigner, jwks: dict[str, Any]
) -> None:
    nodes = [
        MessageLog(
            pg.store(), signer=signer, checkpoint_interval_s=0.02, group_commit_max=7
        )
        for _ in range(3)
    ]
    for node in nodes:
        await node.start()
    receipts = await asyncio.gather(
        *(
            node.append(make_record(i), flush=bool(i % 2))
            for i in range(60)
            for node in nodes
        )
    )
    for node in nodes:
        await node.close()

    store = await opened(pg)
    try:
        report = await verify_log(store, load_jwks(jwks))
    finally:
        await store.close()
    assert sorted(r.seq for r in receipts) == list(range(180))
    assert report.ok, report.problem


async def test_stores_in_other_schemas_never_wait_for_this_one(
    pg: Backend, other_pg: Backend, postgres_dsn: str
) -> None:
    mine, theirs = await opened(pg), await opened(other_pg)
    holder = await asyncpg.connect(postgres_dsn)
    try:
        # Hold this log's writers' lock as a writer in the middle of a batch would.
        await holder.execute("BEGIN")
        await holder.execute("SELECT pg_advisory_xact_lock($1)", mine._key("write"))
        blocked = asyncio.create_task(mine.append_sealing(sealing(1)))
        other = await asyncio.wait_for(theirs.append_sealing(sealing(2)), STUCK_S)
        still_waiting = not blocked.done()
        await holder.execute("COMMIT")
        mine_rows = await asyncio.wait_for(blocked, STUCK_S)
    finally:
        await holder.close()
        await mine.close()
        await theirs.close()

    assert [r.seq for r in other] == [0, 1]
    assert still_waiting
    assert [r.seq for r in mine_rows] == [0]


async def test_a_schemaless_store_and_a_schema_store_do_not_share_a_key(
    postgres_dsn: str,
) -> None:
    plain = PostgresLogStore(postgres_dsn)
    scoped = PostgresLogStore(postgres_dsn, schema="msglog_other")

    assert plain._key("write") != scoped._key("write")
    assert plain._key("write") != plain._key("sealer")


# -- cancellation and failures at each step of a batch -----------------------------


class _Gate:
    """Holds the ``n``-th statement of a batch: before it is sent, or after it ran."""

    def __init__(self, n: int, *, after: bool) -> None:
        self.n, self.after = n, after
        self.count = 0
        self.reached = asyncio.Event()
        self.never = asyncio.Event()

    async def hold(self, at: int) -> None:
        if at == self.n:
            self.reached.set()
            await self.never.wait()


class _GatedConnection:
    """Delegates to a real connection; holds at one statement of the batch."""

    def __init__(self, conn: asyncpg.Connection, gate: _Gate) -> None:
        self._conn, self._gate = conn, gate

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    async def _call(self, method: str, *args: Any) -> Any:
        at, self._gate.count = self._gate.count, self._gate.count + 1
        if not self._gate.after:
            await self._gate.hold(at)
        result = await getattr(self._conn, method)(*args)
        if self._gate.after:
            await self._gate.hold(at)
        return result

    async def execute(self, *args: Any) -> Any:
        return await self._call("execute", *args)

    async def fetchrow(self, *args: Any) -> Any:
        return await self._call("fetchrow", *args)


# A batch with bodies is five statements: BEGIN and the lock, the tail, the
# records, the bodies, COMMIT.
STEPS = range(5)


@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
@pytest.mark.parametrize("step", STEPS)
async def test_a_batch_cancelled_at_any_step_leaves_no_lock_and_no_gap(
    pg: Backend, step: int, after: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = _Gate(step, after=after)
    store, other = await opened(pg), await opened(pg)
    connect = asyncpg.connect

    async def gated(*args: Any, **kwargs: Any) -> Any:
        return _GatedConnection(await connect(*args, **kwargs), gate)

    def with_bodies(tail: LogTail) -> list[SealedRecord]:
        return [dataclasses.replace(r, bodies=b"body") for r in sealing(2)(tail)]

    try:
        monkeypatch.setattr(asyncpg, "connect", gated)
        batch = asyncio.create_task(store.append_sealing(with_bodies))
        await asyncio.wait_for(gate.reached.wait(), STUCK_S)
        monkeypatch.setattr(asyncpg, "connect", connect)
        batch.cancel()
        with pytest.raises((asyncio.CancelledError, StoreError)):
            await batch
        # Another writer is not held up, and this store's next batch works.
        others = await asyncio.wait_for(other.append_sealing(sealing(1)), STUCK_S)
        again = await asyncio.wait_for(store.append_sealing(sealing(1)), STUCK_S)
        size = (await other.tail()).size
        await assert_chain(other, size)
        stored_bodies = await other.bodies(list(range(size)))
    finally:
        await store.close()
        await other.close()

    committed = step == 4 and after  # COMMIT ran before the cancellation
    first = 2 if committed else 0
    assert [r.seq for r in others] == [first]
    assert [r.seq for r in again] == [first + 1]
    assert sorted(stored_bodies) == ([0, 1] if committed else [])


async def test_a_writer_connection_ended_in_a_transaction_frees_the_lock(
    pg: Backend, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = _Gate(1, after=True)  # the tail has been read: the lock is held
    store, other = await opened(pg), await opened(pg)
    connect = asyncpg.connect

    async def gated(*args: Any, **kwargs: Any) -> Any:
        return _GatedConnection(await connect(*args, **kwargs), gate)

    admin = await asyncpg.connect(postgres_dsn)
    try:
        monkeypatch.setattr(asyncpg, "connect", gated)
        batch = asyncio.create_task(store.append_sealing(sealing(1)))
        await asyncio.wait_for(gate.reached.wait(), STUCK_S)
        monkeypatch.setattr(asyncpg, "connect", connect)
        assert store._writer is not None
        pid = store._writer.get_server_pid()
        await admin.execute("SELECT pg_terminate_backend($1)", pid)
        others = await asyncio.wait_for(other.append_sealing(sealing(1)), STUCK_S)
        gate.never.set()
        with pytest.raises(StoreError):
            await batch
        again = await asyncio.wait_for(store.append_sealing(sealing(1)), STUCK_S)
    finally:
        await admin.close()
        await store.close()
        await other.close()

    assert [r.seq for r in others + again] == [0, 1]


async def test_a_store_closed_while_an_append_connects_writes_nothing(
    pg: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await opened(pg)
    connecting, release = asyncio.Event(), asyncio.Event()
    made: list[asyncpg.Connection] = []
    connect = asyncpg.connect

    async def held(*args: Any, **kwargs: Any) -> asyncpg.Connection:
        connecting.set()
        await release.wait()
        made.append(await connect(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(asyncpg, "connect", held)
    append = asyncio.create_task(store.append_sealing(sealing(1)))
    await connecting.wait()
    await store.close()
    release.set()
    outcome = await asyncio.gather(append, return_exceptions=True)
    monkeypatch.setattr(asyncpg, "connect", connect)
    kept_open = not made[0].is_closed()
    made[0].terminate()
    reader = await opened(pg)
    try:
        size = (await reader.tail()).size
    finally:
        await reader.close()

    assert isinstance(outcome[0], StoreError)
    assert not kept_open
    assert size == 0
