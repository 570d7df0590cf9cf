"""``mediator serve`` with and without ``--workers``: refusals and the node's rules."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from gateway.app import worker_count
from gateway.cli import main
from gateway.demo.run import spawn_mediator, spawn_registry, stop, wait_ready
from gateway.demo.setup import DemoDeployment, prepare
from gateway.errors import ConfigError
from tests.gateway.cli.test_serve import (
    ROSTER,
    _use_postgres_log_and_a_short_uri_limit,
    log_database,  # noqa: F401 - a fresh PostgreSQL database for the log
)


def test_a_superscript_worker_count_is_refused_as_config() -> None:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MEDIATOR_WORKERS", "\u00b2")
        with pytest.raises(ConfigError):
            worker_count()


@pytest.mark.parametrize("workers", ["0", "-2", "two"])
def test_serve_refuses_a_worker_count_below_one(tmp_path: Path, workers: str) -> None:
    result = CliRunner().invoke(
        main, ["--config", str(tmp_path), "serve", "--workers", workers]
    )

    assert result.exit_code == 2
    assert "--workers" in result.output


def test_workers_with_redis_but_an_sqlite_log_are_refused(
    tmp_path: Path, registry_db: Path
) -> None:
    demo = prepare(tmp_path / "deployment", registry_db=registry_db)
    argv = ["--config", str(demo.config_dir), "--state-dir", str(demo.state_dir)]

    result = CliRunner().invoke(
        main,
        [*argv, "serve", "--workers", "3"],
        env={**demo.environ(), "MEDIATOR_REDIS_URL": "redis://127.0.0.1:6379/15"},
    )

    assert result.exit_code == 2
    assert "3 worker processes need log.store: postgres" in result.output
    assert "redis.url" not in result.output


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
    log_database: str,  # noqa: F811 - the fixture imported above
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
        _assert_node_refusals(demo)
    finally:
        stop(mediator, "mediator")
        stop(registry, "registry")


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
