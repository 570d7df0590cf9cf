"""PostgreSQL: several nodes writing one log, the elected sealer, checkpoint order."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from gateway.msglog import KeySigner, MessageLog, load_jwks, verify_log
from gateway.msglog.checkpoint import make_checkpoint
from gateway.msglog.postgres import PostgresLogStore
from gateway.msglog.store import StoreError
from tests.gateway.msglog.conftest import Backend, make_record

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


@pytest.fixture
async def pg(postgres_dsn: str, db_path: Path) -> Any:
    backend = Backend("postgres", db_path, postgres_dsn)
    try:
        yield backend
    finally:
        await backend.drop()


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
