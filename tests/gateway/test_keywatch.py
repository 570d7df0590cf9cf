"""Keeping a node's keyring current: change notices, re-reads and their failures."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from structlog.testing import capture_logs

from gateway.keyring import Keyring
from gateway.keywatch import KeyringWatcher, announce
from gateway.secrets import Secret

PASS = Secret("correct horse battery staple")
T0 = 1796378400


@pytest.fixture
def keyring(tmp_path: Path) -> Keyring:
    """The keyring ``mediator keys`` changes."""
    return Keyring.init(tmp_path / "keyring", PASS, now=T0)


@pytest.fixture
def node_view(keyring: Keyring) -> Keyring:
    """The same keyring as a running node holds it."""
    return Keyring.load(keyring.path, PASS)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port held bound but not listening: connections are refused."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


def refused_client(port: int) -> aioredis.Redis:
    """A client of a Redis that refuses connections, failing at once (no retry)."""
    return aioredis.Redis(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0))


def damage_public_key(keyring: Keyring) -> None:
    metadata = keyring.path / "keyring.json"
    document = json.loads(metadata.read_text())
    document["keys"][0]["public_jwk"] = {"kty": "OKP", "crv": "Ed25519"}
    metadata.write_text(json.dumps(document))


async def until(condition: Callable[[], bool]) -> None:
    """Wait up to two seconds for ``condition``; the test's asserts say the rest."""
    for _ in range(100):
        if condition():
            return
        await asyncio.sleep(0.02)


# -- announce ------------------------------------------------------------------------


@pytest.mark.parametrize("url", [None, ""])
def test_without_redis_nothing_is_announced(keyring: Keyring, url: str | None) -> None:
    assert not announce(url, "mediator:keyring", keyring)


def test_an_unreachable_redis_is_logged_not_raised(
    keyring: Keyring, closed_port: int
) -> None:
    with capture_logs() as logs:
        sent = announce(f"redis://127.0.0.1:{closed_port}/0", "k", keyring)

    assert not sent
    assert [(e["event"], e["error"]) for e in logs] == [
        ("keyring.announce_failed", "ConnectionError")
    ]


@pytest.mark.redis
def test_the_announcement_carries_the_keyring_version(
    keyring: Keyring, redis_url: str
) -> None:
    listener = redis.Redis.from_url(redis_url)
    pubsub = listener.pubsub()
    pubsub.subscribe("test:keyring")
    try:
        subscribed = pubsub.get_message(timeout=2)
        sent = announce(redis_url, "test:keyring", keyring)
        message = pubsub.get_message(timeout=2)
    finally:
        pubsub.close()
        listener.close()

    assert subscribed is not None
    assert sent
    assert message is not None
    assert message["data"] == keyring.version.encode()


# -- check ---------------------------------------------------------------------------


def test_a_check_of_an_unchanged_keyring_changes_nothing(node_view: Keyring) -> None:
    watcher = KeyringWatcher(node_view, interval_s=60)

    with capture_logs() as logs:
        assert not watcher.check()

    assert logs == []


def test_a_check_after_a_change_reloads_and_says_so(
    keyring: Keyring, node_view: Keyring
) -> None:
    before = node_view.version
    pending = keyring.rotate(activate_in_s=0)
    watcher = KeyringWatcher(node_view, interval_s=60)

    with capture_logs() as logs:
        assert watcher.check()

    assert node_view.key_id == pending.kid
    assert logs == [
        {
            "event": "keyring.reloaded",
            "log_level": "info",
            "key_id": pending.kid,
            "version": keyring.version[:16],
            "previous": before[:16],
        }
    ]


def test_a_check_that_fails_keeps_the_keys_and_logs_why(
    keyring: Keyring, node_view: Keyring
) -> None:
    signer = node_view.key_id
    damage_public_key(keyring)
    watcher = KeyringWatcher(node_view, interval_s=60)

    with capture_logs() as logs:
        assert not watcher.check()

    assert node_view.key_id == signer
    (event,) = logs
    assert event["event"] == "keyring.reload_failed"
    assert event["file"] == str(keyring.path / "keyring.json")
    assert event["reason"].endswith("the record is malformed")


# -- the background tasks ------------------------------------------------------------


@pytest.mark.anyio
async def test_the_re_read_goes_on_after_a_failed_reload(
    keyring: Keyring, node_view: Keyring
) -> None:
    """A damaged keyring.json must not end the task that would see it mended."""
    watcher = KeyringWatcher(node_view, interval_s=0.02)
    metadata = keyring.path / "keyring.json"
    intact = metadata.read_bytes()
    damage_public_key(keyring)
    await watcher.start()
    try:
        await asyncio.sleep(0.1)
        metadata.write_bytes(intact)
        pending = keyring.rotate(activate_in_s=0)
        await until(lambda: node_view.key_id == pending.kid)
    finally:
        await watcher.stop()

    assert node_view.key_id == pending.kid


@pytest.mark.anyio
async def test_a_lost_subscription_is_logged_and_the_re_read_still_runs(
    keyring: Keyring, node_view: Keyring, closed_port: int
) -> None:
    client = refused_client(closed_port)
    watcher = KeyringWatcher(node_view, interval_s=0.02, redis_client=client)
    with capture_logs() as logs:
        await watcher.start()
        try:
            pending = keyring.rotate(activate_in_s=0)
            await until(lambda: node_view.key_id == pending.kid)
            await until(lambda: any(e["event"] == "keyring.notice_lost" for e in logs))
        finally:
            await watcher.stop()
            await client.aclose()

    lost = [e for e in logs if e["event"] == "keyring.notice_lost"]
    assert node_view.key_id == pending.kid
    assert lost[0] == {
        "event": "keyring.notice_lost",
        "log_level": "warning",
        "error": "ConnectionError",
    }


@pytest.mark.anyio
async def test_stopping_ends_both_tasks(node_view: Keyring, closed_port: int) -> None:
    client = refused_client(closed_port)
    watcher = KeyringWatcher(node_view, interval_s=0.02, redis_client=client)
    await watcher.start()
    tasks = [t for t in asyncio.all_tasks() if t.get_name().startswith("keyring-")]

    with capture_logs():
        await watcher.stop()
    await client.aclose()

    assert sorted(t.get_name() for t in tasks) == ["keyring-listen", "keyring-poll"]
    assert all(t.cancelled() for t in tasks)
