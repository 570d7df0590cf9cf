"""The PostgreSQL message log goes away and comes back under a running node.

The node logs to a database created for the test (so that its connections can be
refused with ``ALLOW_CONNECTIONS false`` and cut with ``pg_terminate_backend``
without touching any other database); the database is dropped afterwards. While
it is away every exchange is refused ``503 log_unavailable`` and, once the node
has seen the log fail, nothing reaches the provider; when it is back, exchanges
succeed again without a restart, no record is lost or duplicated and the log
verifies.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import orjson
import pytest

from gateway.app import app_for_node
from gateway.client import Answer, DepartmentClient
from gateway.demo.setup import prepare
from gateway.deployment import load_deployment
from gateway.msglog import verify_log
from gateway.msglog.postgres import PostgresLogStore
from gateway.msglog.verify import keys_from_keyring
from gateway.node import Node
from gateway.settings import LogSettings
from gateway.signing import sign_response
from registry_stub.app import create_app as create_registry
from registry_stub.tables import DISTRICTS
from tests.gateway.conftest import SABOOJSATHI
from tests.gateway.hostile.support import SCHOOLS

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

DISTRICT = DISTRICTS[0][0]


@dataclasses.dataclass
class PgNode:
    """A started node logging to ``database``, and what reached the provider."""

    node: Node
    client: DepartmentClient
    admin_dsn: str
    database: str
    dsn: str
    forwarded: list[str]

    async def exchange(self) -> Answer:
        return await self.client.call("GET", SCHOOLS, "/", query={"district": DISTRICT})

    async def admin(self, *statements: str) -> None:
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            for sql in statements:
                await conn.execute(sql)
        finally:
            await conn.close()

    async def take_down(self) -> None:
        """Refuse new connections to the log database and cut the open ones."""
        await self.admin(
            f"ALTER DATABASE {self.database} ALLOW_CONNECTIONS false",
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{self.database}' AND pid <> pg_backend_pid()",
        )

    async def bring_back(self) -> None:
        await self.admin(f"ALTER DATABASE {self.database} ALLOW_CONNECTIONS true")


def _database_dsn(dsn: str, database: str) -> str:
    return str(httpx.URL(dsn).copy_with(path=f"/{database}"))


@pytest.fixture
async def pg_node(
    tmp_path: Path,
    registry_db: Path,
    postgres_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[PgNode]:
    database = f"mediator_faults_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(postgres_dsn)
    try:
        await admin.execute(f"CREATE DATABASE {database}")
    finally:
        await admin.close()
    dsn = _database_dsn(postgres_dsn, database)
    forwarded: list[str] = []
    try:
        running = await _started_node(
            tmp_path, registry_db, dsn, monkeypatch, forwarded
        )
        try:
            yield PgNode(
                running.node, running.client, postgres_dsn, database, dsn, forwarded
            )
        finally:
            await running.close()
    finally:
        admin = await asyncpg.connect(postgres_dsn)
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        finally:
            await admin.close()


@dataclasses.dataclass
class _Running:
    node: Node
    client: DepartmentClient
    closers: list[httpx.AsyncClient]

    async def close(self) -> None:
        for http in self.closers:
            await http.aclose()
        await self.node.stop()


async def _started_node(
    tmp_path: Path,
    registry_db: Path,
    dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    forwarded: list[str],
) -> _Running:
    """The harness's node, but with ``log.store: postgres`` on ``dsn``."""
    demo = prepare(tmp_path / "deployment", registry_db=registry_db)
    for name, value in demo.environ().items():
        monkeypatch.setenv(name, value)
    loaded = load_deployment(demo.config_dir, demo.state_dir)
    log = LogSettings(store="postgres", postgres_dsn=dsn, checkpoint_interval_s=3600)
    deployment = dataclasses.replace(
        loaded, settings=loaded.settings.model_copy(update={"log": log})
    )
    registry_key = demo.registry_key
    if registry_key is None:
        raise RuntimeError("the deployment has no registry key")

    def sign(status: int, headers: dict[str, str], body: bytes) -> dict[str, str]:
        return sign_response(registry_key, status=status, headers=headers, body=body)

    async def count(request: httpx.Request) -> None:
        forwarded.append(request.headers["x-road-id"])

    registry_http = httpx.AsyncClient(
        transport=httpx.ASGITransport(
            create_registry(registry_db, response_signer=sign)
        ),
        event_hooks={"request": [count]},
    )
    node = await Node.start(
        deployment, http_client=registry_http, passphrase=demo.passphrase
    )
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app_for_node(node), client=("127.0.0.1", 40000)),
        base_url=demo.mediator_url,
    )
    client = DepartmentClient(
        client_id=SABOOJSATHI,
        key=demo.client_keys[SABOOJSATHI],
        audience=demo.audience,
        base_url=demo.mediator_url,
        http=http,
        node_keys=node.keyring.registered_keys(),
    )
    return _Running(node, client, [http, registry_http])


async def _logged_ids(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT canonical FROM records ORDER BY seq")
    finally:
        await conn.close()
    # A forwarded exchange has a request and a response record under one id.
    return ["{message_id}/{direction}".format_map(orjson.loads(row[0])) for row in rows]


async def _verifies(pg: PgNode) -> bool:
    keyring = pg.node.deployment.path(pg.node.deployment.settings.keyring.path)
    document = orjson.loads((keyring / "keyring.json").read_bytes())
    keys, revoked = keys_from_keyring(document, "keyring.json")
    store = PostgresLogStore(pg.dsn)
    await store.open()
    try:
        report = await verify_log(store, keys, revoked_at=revoked)
    finally:
        await store.close()
    return report.ok


async def test_a_lost_log_database_refuses_exchanges_and_forwards_nothing(
    pg_node: PgNode,
) -> None:
    assert (await pg_node.exchange()).status == 200
    await pg_node.take_down()

    # The first exchange finds out that the log is gone: its answer is withheld.
    first = await pg_node.exchange()
    seen = len(pg_node.forwarded)
    refused = [await pg_node.exchange() for _ in range(3)]

    assert [a.status for a in [first, *refused]] == [503] * 4
    assert {a.error_type for a in [first, *refused]} == {
        "Server.Mediator.log_unavailable"
    }
    assert len(pg_node.forwarded) == seen


async def test_not_even_the_first_exchange_of_an_outage_is_forwarded(
    pg_node: PgNode,
) -> None:
    await pg_node.take_down()
    before = len(pg_node.forwarded)

    answer = await pg_node.exchange()

    assert answer.status == 503
    assert len(pg_node.forwarded) == before


async def test_the_node_serves_again_when_the_log_database_is_back(
    pg_node: PgNode,
) -> None:
    await pg_node.take_down()
    assert (await pg_node.exchange()).status == 503
    await pg_node.bring_back()

    statuses = [(await pg_node.exchange()).status for _ in range(3)]

    # The refusal that finds the log back is itself logged; the next is served.
    assert statuses[-2:] == [200, 200]


async def test_no_record_is_lost_or_duplicated_across_an_outage(
    pg_node: PgNode,
) -> None:
    answers = [await pg_node.exchange() for _ in range(3)]
    await pg_node.take_down()
    answers += [await pg_node.exchange() for _ in range(3)]
    await pg_node.bring_back()
    answers += [await pg_node.exchange() for _ in range(4)]

    logged = await _logged_ids(pg_node.dsn)
    served = [a.headers["x-road-id"] for a in answers if a.status == 200]
    assert len(served) >= 6
    assert len(logged) == len(set(logged))
    assert {f"{m}/response" for m in served} <= set(logged)
    assert {f"{m}/request" for m in served} <= set(logged)
    assert await _verifies(pg_node)
