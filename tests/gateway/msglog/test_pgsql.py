"""The PostgreSQL log's statements, as the server takes them."""

from __future__ import annotations

import asyncpg
import pytest

from gateway.msglog import pgsql

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


@pytest.mark.parametrize("key", [-(2**63), 2**63 - 1, 0])
async def test_the_writers_lock_takes_every_64_bit_key(
    postgres_dsn: str, key: int
) -> None:
    conn = await asyncpg.connect(postgres_dsn)
    try:
        for begin in (pgsql.BEGIN_LOCKED, pgsql.BEGIN_LOCKED_UNFLUSHED):
            await conn.execute(begin.format(key=key))
            held = await conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid = pg_backend_pid()"
            )
            await conn.execute("ROLLBACK")
            assert held == 1
    finally:
        await conn.close()
