"""PostgreSQL: several nodes writing one log, the elected sealer, checkpoint order."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import asyncpg
import pytest

from gateway.msglog import KeySigner, MessageLog, load_jwks, verify_log
from gateway.msglog.checkpoint import make_checkpoint
from gateway.msglog.postgres import PostgresLogStore, _append
from gateway.msglog.records import SealedRecord, seal
from gateway.msglog.store import SELECT_TAIL, LogTail, StoreError
from tests.gateway.msglog.conftest import Backend, make_record, terminate_backend

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


async def test_two_nodes_write_one_contiguous_verifiable_log(
    pg: Backend, signer: KeySigner, jwks: dict[str, Any]
) -> None:
    nodes = [
        MessageLog(pg.store(), signer=signer, checkpoint_interval_s=0.01)
        for _ in range(2)
    ]
    for node in nodes:
        await node.start()
    receipts = await asyncio.gather(
        *(node.append(make_record(i)) for i in range(150) for node in nodes)
    )
    for node in nodes:
        await node.close()

    store = pg.store()
    await store.open()
    report = await verify_log(store, load_jwks(jwks))
    await store.close()
    assert sorted(r.seq for r in receipts) == list(range(300))
    assert report.ok, report.problem
    assert report.records == 300


async def test_only_one_node_is_the_sealer_until_it_leaves(pg: Backend) -> None:
    first, second = pg.store(), pg.store()
    await first.open()
    await second.open()
    claims = [await first.claim_sealer(), await second.claim_sealer()]
    await first.close()
    after = await second.claim_sealer()
    await second.close()
    assert claims == [True, False]
    assert after is True


async def test_a_lagging_sealer_cannot_store_a_smaller_checkpoint(
    pg: Backend, signer: KeySigner
) -> None:
    store = pg.store()
    await store.open()
    await store.save_checkpoint(make_checkpoint("o", 5, b"\x01" * 32, 1.0, signer))
    with pytest.raises(StoreError) as caught:
        await store.save_checkpoint(make_checkpoint("o", 4, b"\x02" * 32, 2.0, signer))
    await store.close()
    assert caught.value.operation == "checkpoint_out_of_order"


async def test_invalid_schema_name_is_refused(postgres_dsn: str) -> None:
    with pytest.raises(StoreError):
        PostgresLogStore(postgres_dsn, schema="bad; drop")


# -- the sealer's election: one kept connection per node --------------------------


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[asyncpg.Connection]:
    """Every connection opened with ``asyncpg.connect`` (the pool's are not)."""
    opened: list[asyncpg.Connection] = []
    connect = asyncpg.connect

    async def recording(*args: Any, **kwargs: Any) -> asyncpg.Connection:
        conn = await connect(*args, **kwargs)
        opened.append(conn)
        return conn

    monkeypatch.setattr(asyncpg, "connect", recording)
    return opened


async def test_a_node_that_is_not_the_sealer_asks_again_on_one_connection(
    pg: Backend, connects: list[asyncpg.Connection]
) -> None:
    first, second = pg.store(), cast(PostgresLogStore, pg.store())
    await first.open()
    await second.open()
    try:
        assert await first.claim_sealer()
        before = len(connects)
        claims = [await second.claim_sealer() for _ in range(3)]
        await first.close()
        taken = await second.claim_sealer()
        sealer = second._sealer
    finally:
        await first.close()
        await second.close()

    assert claims == [False, False, False]
    assert taken is True
    assert len(connects) - before == 1
    assert sealer is connects[-1]  # it took over on the connection it kept


async def test_closing_a_store_closes_the_connection_its_lost_claim_kept(
    pg: Backend, connects: list[asyncpg.Connection]
) -> None:
    first, second = pg.store(), pg.store()
    await first.open()
    await second.open()
    assert await first.claim_sealer()
    before = len(connects)
    lost = await second.claim_sealer()
    (kept,) = connects[before:]
    open_before_close = not kept.is_closed()
    await second.close()
    await first.close()

    assert lost is False
    assert open_before_close
    assert kept.is_closed()


async def test_a_store_closed_while_a_claim_connects_keeps_no_connection(
    pg: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = pg.store()
    await store.open()
    connecting, release = asyncio.Event(), asyncio.Event()
    opened: list[asyncpg.Connection] = []
    connect = asyncpg.connect

    async def held(*args: Any, **kwargs: Any) -> asyncpg.Connection:
        connecting.set()
        await release.wait()
        opened.append(await connect(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(asyncpg, "connect", held)
    claim = asyncio.create_task(store.claim_sealer())
    await connecting.wait()
    await store.close()
    release.set()
    won = await claim

    assert won is False
    assert opened[0].is_closed()


async def test_a_kept_connection_the_server_ended_is_replaced(
    pg: Backend, postgres_dsn: str
) -> None:
    first, second = pg.store(), cast(PostgresLogStore, pg.store())
    await first.open()
    await second.open()
    assert await first.claim_sealer()
    assert not await second.claim_sealer()
    assert second._candidate is not None
    ended_pid = second._candidate.get_server_pid()
    await terminate_backend(postgres_dsn, ended_pid)
    outcomes: list[bool | None] = []
    for _ in range(2):
        try:
            outcomes.append(await second.claim_sealer())
        except StoreError:
            outcomes.append(None)
    assert second._candidate is not None
    new_pid = second._candidate.get_server_pid()
    await first.close()
    await second.close()

    assert outcomes[1:] == [False]  # at most the first claim after it fails
    assert new_pid != ended_pid


# -- the appends' own connection -------------------------------------------------


def _seal_after(tail: LogTail, count: int = 1) -> list[SealedRecord]:
    rows, prev = [], tail.last_hash
    for seq in range(tail.size, tail.size + count):
        rows.append(seal(make_record(seq), seq, prev))
        prev = rows[-1].hash
    return rows


def _failing_seal(_tail: LogTail) -> list[SealedRecord]:
    raise RuntimeError("sealing failed")


async def test_a_failed_batch_leaves_no_lock_and_the_next_batch_is_written(
    pg: Backend,
) -> None:
    first, second = pg.store(), pg.store()
    await first.open()
    await second.open()
    try:
        with pytest.raises(RuntimeError):
            await first.append_sealing(_failing_seal)
        # Another node is not held up by a transaction the failure left open.
        others = await asyncio.wait_for(second.append_sealing(_seal_after), 10)
        again = await first.append_sealing(lambda tail: _seal_after(tail, 3))
    finally:
        await first.close()
        await second.close()

    assert [r.seq for r in others + again] == [0, 1, 2, 3]


async def test_a_writer_connection_the_server_ended_is_replaced(
    pg: Backend, postgres_dsn: str
) -> None:
    store = cast(PostgresLogStore, pg.store())
    await store.open()
    await store.append_sealing(_seal_after)
    assert store._writer is not None
    first_pid = store._writer.get_server_pid()
    await terminate_backend(postgres_dsn, first_pid)
    outcomes = []
    for _ in range(3):
        try:
            outcomes.append(len(await store.append_sealing(_seal_after)))
        except StoreError:
            outcomes.append(0)
    assert store._writer is not None
    last_pid = store._writer.get_server_pid()
    await store.close()

    assert outcomes[1:] == [1, 1]  # at most the first append after it fails
    assert last_pid != first_pid


@pytest.mark.parametrize("flush", [True, False])
async def test_a_batch_is_four_statements_and_only_unflushed_ones_skip_the_sync(
    flush: bool,
) -> None:
    conn = _Recorder()

    rows = await _append(conn, _seal_after, 1234, flush=flush)  # type: ignore[arg-type]

    begin, tail, insert, commit = conn.statements
    assert begin.startswith("BEGIN;")
    assert "pg_advisory_xact_lock(1234)" in begin
    assert ("synchronous_commit" in begin) is not flush
    assert (tail, commit) == (SELECT_TAIL, "COMMIT")
    assert insert.startswith("INSERT INTO records")
    assert [r.seq for r in rows] == [5]


class _Recorder:
    """Stands in for a connection: records statements, answers a tail of 5."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    async def execute(self, sql: str, *_args: Any) -> str:
        self.statements.append(sql)
        return ""

    async def fetchrow(self, sql: str) -> tuple[int, str]:
        self.statements.append(sql)
        return (4, "ab" * 32)


async def test_the_probe_fails_while_the_records_table_is_gone(pg: Backend) -> None:
    """A database that answers is not a log that can be written: recovery must
    not declare the log back while every append would fail."""
    store = pg.store()
    await store.open()
    try:
        await store.probe()
        await pg.tamper(("ALTER TABLE records RENAME TO records_moved", ()))
        with pytest.raises(StoreError):
            await store.probe()
        await pg.tamper(("ALTER TABLE records_moved RENAME TO records", ()))
        await store.probe()
    finally:
        await store.close()
