"""C33 B: replay keys live where Redis cannot evict them. The node refuses a replay
Redis whose ``maxmemory-policy`` evicts, unless ``redis.replay_url`` names one with
``noeviction``; the policy is set on the real Redis with CONFIG SET and restored."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio as aioredis

from gateway.errors import ConfigError, NodeError
from gateway.replay import check_replay_store, open_replay_cache
from gateway.settings import RedisSettings

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

CLOSED = "redis://127.0.0.1:1/0"


@contextlib.contextmanager
def _policy(url: str, policy: str) -> Iterator[None]:
    """The server's eviction policy set to ``policy`` for the block only."""
    client = redis.Redis.from_url(url)
    before = client.config_get("maxmemory-policy")["maxmemory-policy"]
    client.config_set("maxmemory-policy", policy)
    try:
        yield
    finally:
        client.config_set("maxmemory-policy", before)
        client.close()


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-ttl", "allkeys-random"])
async def test_an_evicting_redis_is_refused_at_start(
    redis_url: str, policy: str
) -> None:
    with _policy(redis_url, policy), pytest.raises(ConfigError) as caught:
        await check_replay_store(RedisSettings(url=redis_url))

    assert caught.value.file == "node.yaml redis.url"
    assert policy in caught.value.reason


async def test_a_noeviction_redis_passes(redis_url: str) -> None:
    with _policy(redis_url, "noeviction"):
        assert await check_replay_store(RedisSettings(url=redis_url)) is True


async def test_a_replay_url_on_the_same_evicting_instance_is_refused(
    redis_url: str,
) -> None:
    other_db = redis_url.rsplit("/", 1)[0] + "/14"
    settings = RedisSettings(url=redis_url, replay_url=other_db)

    with _policy(redis_url, "allkeys-lru"), pytest.raises(ConfigError) as caught:
        await check_replay_store(settings)

    assert caught.value.file == "node.yaml redis.replay_url"


@pytest.mark.sockets
async def test_a_separate_noeviction_replay_redis_is_accepted(
    redis_url: str, private_redis: str
) -> None:
    settings = RedisSettings(url=redis_url, replay_url=private_redis)

    with _policy(redis_url, "allkeys-lru"):
        checked = await check_replay_store(settings)
    shared = aioredis.from_url(redis_url)
    cache = open_replay_cache(settings, shared, checked=checked)
    try:
        first = await cache.first_use("iss", "J1", 60)
        second = await cache.first_use("iss", "J1", 60)
    finally:
        await cache.aclose()
        await shared.aclose()

    assert checked is True
    assert (first, second) == (True, False)
    probe = redis.Redis.from_url(private_redis)
    assert probe.dbsize() == 1
    probe.close()


async def test_an_unreachable_redis_is_checked_on_first_use(redis_url: str) -> None:
    """Unreachable at start: the node starts; the check runs when Redis answers,
    and an evicting Redis then fails closed rather than accept a token."""
    assert await check_replay_store(RedisSettings(url=CLOSED)) is False
    client = aioredis.from_url(redis_url)
    cache = open_replay_cache(RedisSettings(url=redis_url), client, checked=False)
    try:
        with _policy(redis_url, "allkeys-lru"), pytest.raises(NodeError) as caught:
            await cache.first_use("iss", "J2", 60)
        accepted = await cache.first_use("iss", "J2", 60)
    finally:
        await client.aclose()

    assert caught.value.log_reason == "replay_store_evicts"
    assert accepted is True
