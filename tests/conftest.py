"""Fixtures shared by the whole suite: the async backend and the real services.

Tests marked ``redis`` or ``postgres`` need the real servers on loopback. On a
developer's machine without them they are skipped with the reason shown; in CI
(``CI=true``) a missing server is an error, so nothing is silently skipped there.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from gateway.admission import Admission
from gateway.replay import RedisReplayCache
from gateway.throttle import Throttle

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
POSTGRES_HOST, POSTGRES_PORT = "127.0.0.1", 5432


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _require(name: str, host: str, port: int) -> None:
    if _reachable(host, port):
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{name} is required in CI but {host}:{port} is not reachable")
    pytest.skip(f"{name} not reachable at {host}:{port}")


@pytest.fixture
def redis_url() -> str:
    """A Redis URL on db 15, flushed before the test; skips or fails if absent."""
    _require("Redis", REDIS_HOST, REDIS_PORT)
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=15)
    client.flushdb()
    client.close()
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/15"


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[str]:
    """The URL (database 0) of a redis-server of the test's own on 127.0.0.1,
    with ``noeviction``, for tests that change a server's configuration (never
    the shared one's). Skips without ``redis-server``; in CI that is an error."""
    from gateway.demo.setup import free_port

    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is required in CI but is not installed")
        pytest.skip("redis-server is not installed")
    port = free_port()
    command = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
    command += ["--appendonly", "no", "--dir", str(tmp_path)]
    command += ["--maxmemory-policy", "noeviction"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        _wait_for_redis(port)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def _wait_for_redis(port: int) -> None:
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.2)
    try:
        for _ in range(100):
            with contextlib.suppress(redis.ConnectionError):
                client.ping()
                return
            time.sleep(0.05)
    finally:
        client.close()
    raise RuntimeError("redis-server did not start")


@pytest.fixture
def postgres_dsn() -> str:
    """A DSN of the local PostgreSQL (trust auth); skips or fails if absent."""
    _require("PostgreSQL", POSTGRES_HOST, POSTGRES_PORT)
    # No SSL negotiation on loopback: asyncpg cancelled in the middle of one can
    # leave a future with an error nobody reads, which fails the test after it.
    return f"postgresql://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/postgres?sslmode=disable"


SOFTHSM_LIBRARY = "/usr/lib/softhsm/libsofthsm2.so"


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A fresh SoftHSM2 token for the session; skips or fails if SoftHSM2 is absent.

    SoftHSM2 reads its configuration once per process, so one token serves the
    whole session (each test uses its own key labels).
    """
    import importlib.util
    import shutil
    import subprocess

    missing = [
        what
        for what, ok in (
            ("softhsm2-util", shutil.which("softhsm2-util") is not None),
            (SOFTHSM_LIBRARY, os.path.exists(SOFTHSM_LIBRARY)),
            ("python-pkcs11", importlib.util.find_spec("pkcs11") is not None),
        )
        if not ok
    ]
    if missing:
        message = f"SoftHSM2 tests need {', '.join(missing)}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (required in CI)")
        pytest.skip(message)

    base = tmp_path_factory.mktemp("softhsm")
    (base / "tokens").mkdir()
    conf = base / "softhsm2.conf"
    tokens = base / "tokens"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            "mediator-test",
            "--pin",
            "123456",
            "--so-pin",
            "12345678",
        ],
        check=True,
        capture_output=True,
    )
    return {"library": SOFTHSM_LIBRARY, "label": "mediator-test", "pin": "123456"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give every test of a service marker the fixture that checks the service."""
    for item in items:
        if item.get_closest_marker("redis") and "redis_url" not in getattr(
            item, "fixturenames", ()
        ):
            item.fixturenames.append("redis_url")  # type: ignore[attr-defined]
        if item.get_closest_marker("hsm") and "softhsm" not in getattr(
            item, "fixturenames", ()
        ):
            item.fixturenames.append("softhsm")  # type: ignore[attr-defined]
        if item.get_closest_marker("postgres") and "postgres_dsn" not in getattr(
            item, "fixturenames", ()
        ):
            item.fixturenames.append("postgres_dsn")  # type: ignore[attr-defined]


@pytest.fixture
async def shared_redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A client of the test Redis database, emptied before and after."""
    client = aioredis.from_url(redis_url)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.flushdb()
        await client.aclose()


@pytest.fixture
def combined(shared_redis: aioredis.Redis) -> Admission:
    """Replay cache and rate limits in one Redis, as a node with ``redis.url``."""
    return Admission(
        RedisReplayCache(shared_redis), Throttle("100/second", 8, redis=shared_redis)
    )
