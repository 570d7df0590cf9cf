"""``mediator serve --workers``: several processes of one node, on shared state."""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest
from click.testing import CliRunner, Result

from gateway.auth import make_assertion
from gateway.cli import main
from gateway.demo.run import spawn_mediator, spawn_registry, stop, wait_ready
from gateway.demo.setup import DemoDeployment, prepare
from tests.gateway.conftest import SABOOJSATHI

ROSTER = "/r1/WB/GOV/SED/banglarshiksha/students/roster/19999999999"


def _serve_workers(
    tmp_path: Path, registry_db: Path, workers: int, redis: str
) -> Result:
    """``mediator serve --workers`` on a fresh demo deployment, ``redis`` its URL."""
    demo = prepare(tmp_path / "deployment", registry_db=registry_db)
    argv = ["--config", str(demo.config_dir), "--state-dir", str(demo.state_dir)]
    return CliRunner().invoke(
        main,
        [*argv, "serve", "--workers", str(workers)],
        env={**demo.environ(), "MEDIATOR_REDIS_URL": redis},
    )


def test_workers_without_shared_state_are_refused_before_they_start(
    tmp_path: Path, registry_db: Path
) -> None:
    result = _serve_workers(tmp_path, registry_db, 2, redis="")

    assert result.exit_code == 2
    assert "2 worker processes need redis.url" in result.output
    assert "log.store: postgres" in result.output


def test_workers_with_redis_but_an_sqlite_log_are_refused(
    tmp_path: Path, registry_db: Path
) -> None:
    result = _serve_workers(tmp_path, registry_db, 3, redis="redis://127.0.0.1:6379/15")

    assert result.exit_code == 2
    assert "3 worker processes need log.store: postgres" in result.output
    assert "redis.url" not in result.output


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
    with _two_workers(demo, redis_url):
        # Each call a new connection, so that both workers take some of them.
        pairs = [_twice(demo) for _ in range(6)]
        long_target = httpx.get(f"{demo.mediator_url}{ROSTER}/{'a' * 600}")

    assert pairs == [(200, 401)] * 6
    assert long_target.status_code == 414
    assert long_target.headers["x-road-error"].endswith(".uri_too_long")


@contextmanager
def _two_workers(demo: DemoDeployment, redis_url: str) -> Iterator[None]:
    """The registry and ``mediator serve --workers 2`` on Redis, for the block."""
    (demo.root / "logs").mkdir(exist_ok=True)
    registry = spawn_registry(demo)
    mediator = spawn_mediator(
        demo, options=["--workers", "2"], environ={"MEDIATOR_REDIS_URL": redis_url}
    )
    try:
        wait_ready(f"{demo.registry_url}/api/openapi.json", registry, "registry")
        wait_ready(f"{demo.mediator_url}/admin/health", mediator, "mediator")
        yield
    finally:
        stop(mediator, "mediator")
        stop(registry, "registry")


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


@pytest.mark.parametrize("workers", ["0", "-2", "two"])
def test_serve_refuses_a_worker_count_below_one(tmp_path: Path, workers: str) -> None:
    result = CliRunner().invoke(
        main, ["--config", str(tmp_path), "serve", "--workers", workers]
    )

    assert result.exit_code == 2
    assert "--workers" in result.output


# -- real processes -----------------------------------------------------------------


def _raw(demo: DemoDeployment, data: bytes) -> bytes:
    """Send ``data`` on a new connection; everything until the node closes it."""
    port = httpx.URL(demo.mediator_url).port
    with socket.create_connection(("127.0.0.1", port or 80), timeout=10) as conn:
        conn.sendall(data)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _host(demo: DemoDeployment) -> bytes:
    return httpx.URL(demo.mediator_url).netloc


def _assert_node_refusals(demo: DemoDeployment) -> None:
    """A fragment and a smuggling attempt get the node's X-Road error, every time."""
    host = _host(demo)
    fragment = b"GET " + ROSTER.encode() + b"#x HTTP/1.1\r\nHost: " + host + b"\r\n\r\n"
    smuggling = (
        b"POST " + ROSTER.encode() + b" HTTP/1.1\r\nHost: " + host + b"\r\n"
        b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )
    for _ in range(4):  # new connections, so that every worker takes some
        for data, reason in ((fragment, b"invalid_path"), (smuggling, None)):
            answer = _raw(demo, data)
            head = answer.partition(b"\r\n\r\n")[0].lower()
            assert answer.startswith(b"HTTP/1.1 400"), answer[:60]
            assert b"x-road-error: client." in head, answer[:200]
            if reason is not None:
                assert b"." + reason in head


@pytest.mark.sockets
@pytest.mark.redis
@pytest.mark.postgres
def test_workers_refuse_a_fragment_and_smuggling_as_the_node_does(
    tmp_path: Path,
    registry_db: Path,
    redis_url: str,
    log_database: str,
) -> None:
    demo = prepare(tmp_path / "deployment", registry_db=registry_db)
    _use_postgres_log_and_a_short_uri_limit(demo, log_database)
    with _two_workers(demo, redis_url):
        _assert_node_refusals(demo)


@pytest.mark.sockets
def test_one_process_serves_without_redis(tmp_path: Path, registry_db: Path) -> None:
    demo = prepare(tmp_path / "deployment", registry_db=registry_db)
    (demo.root / "logs").mkdir(exist_ok=True)
    mediator = spawn_mediator(demo, environ={"MEDIATOR_REDIS_URL": ""})
    try:
        wait_ready(f"{demo.mediator_url}/admin/health", mediator, "mediator")
        _assert_node_refusals(demo)
    finally:
        stop(mediator, "mediator")
