"""``mediator serve --workers``: several processes of one node, on shared state."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from click.testing import CliRunner

from gateway.auth import make_assertion
from gateway.cli import main
from gateway.demo.run import spawn_mediator, spawn_registry, stop, wait_ready
from gateway.demo.setup import DemoDeployment, prepare
from tests.gateway.conftest import SABOOJSATHI

ROSTER = "/r1/WB/GOV/SED/banglarshiksha/students/roster/19999999999"


def test_workers_without_shared_state_are_refused_before_they_start(
    tmp_path: Path, registry_db: Path
) -> None:
    demo = prepare(tmp_path / "deployment", registry_db=registry_db)
    argv = ["--config", str(demo.config_dir), "--state-dir", str(demo.state_dir)]

    result = CliRunner().invoke(
        main,
        [*argv, "serve", "--workers", "2"],
        env={**demo.environ(), "MEDIATOR_REDIS_URL": ""},
    )

    assert result.exit_code == 2
    assert "2 worker processes need redis.url" in result.output
    assert "log.store: postgres" in result.output


@pytest.fixture
def log_database(postgres_dsn: str) -> Iterator[str]:
    """A fresh PostgreSQL database for one node's message log; its DSN."""
    name = f"mediator_workers_{secrets.token_hex(6)}"
    asyncio.run(_admin(postgres_dsn, f"CREATE DATABASE {name}"))
    try:
        yield str(httpx.URL(postgres_dsn).copy_with(path=f"/{name}"))
    finally:
        asyncio.run(
            _admin(postgres_dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        )


async def _admin(dsn: str, statement: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.mark.sockets
@pytest.mark.redis
@pytest.mark.postgres
def test_two_workers_refuse_a_replay_and_apply_the_node_s_limits(
    tmp_path: Path, registry_db: Path, redis_url: str, log_database: str
) -> None:
    demo = prepare(tmp_path / "deployment", registry_db=registry_db)
    _use_postgres_log_and_a_short_uri_limit(demo, log_database)
    (demo.root / "logs").mkdir(exist_ok=True)
    registry = spawn_registry(demo)
    mediator = spawn_mediator(
        demo, options=["--workers", "2"], environ={"MEDIATOR_REDIS_URL": redis_url}
    )
    try:
        wait_ready(f"{demo.registry_url}/api/openapi.json", registry, "registry")
        wait_ready(f"{demo.mediator_url}/admin/health", mediator, "mediator")
        # Each call a new connection, so that both workers take some of them.
        pairs = [_twice(demo) for _ in range(6)]
        long_target = httpx.get(f"{demo.mediator_url}{ROSTER}/{'a' * 600}")
    finally:
        stop(mediator, "mediator")
        stop(registry, "registry")

    assert pairs == [(200, 401)] * 6
    assert long_target.status_code == 414
    assert long_target.headers["x-road-error"].endswith(".uri_too_long")


def _twice(demo: DemoDeployment) -> tuple[int, int]:
    """The statuses of one assertion presented twice."""
    token = make_assertion(
        client_id=SABOOJSATHI,
        key=demo.client_keys[SABOOJSATHI],
        audience=demo.audience,
    )
    headers = {
        "Authorization": f"Bearer {token}",
        "X-Road-Client": str(SABOOJSATHI),
        "X-Road-Purpose": "saboojsathi-roster",
    }
    first, second = (
        httpx.get(f"{demo.mediator_url}{ROSTER}", headers=headers) for _ in range(2)
    )
    return first.status_code, second.status_code


def _use_postgres_log_and_a_short_uri_limit(demo: DemoDeployment, dsn: str) -> None:
    node = demo.config_dir / "node.yaml"
    text = node.read_text()
    sqlite_log = "log:\n  store: sqlite\n  sqlite_path: messagelog.db\n"
    assert sqlite_log in text
    text = text.replace(
        sqlite_log, f'log:\n  store: postgres\n  postgres_dsn: "{dsn}"\n'
    )
    node.write_text(text.replace("limits:\n", "limits:\n  max_uri_bytes: 512\n", 1))
