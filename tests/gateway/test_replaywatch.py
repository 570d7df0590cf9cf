"""The eviction watch of a Redis replay store, on readings of its own choosing.

The checks against a real (private) Redis are in hostile/test_replay_eviction.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import fakeredis
import pytest
from redis.asyncio import Redis

from gateway import replaywatch as replay_module
from gateway.replay import RedisReplayCache
from tests.gateway.test_replay import Clock


@pytest.fixture
async def fake_redis() -> AsyncIterator[Redis]:
    client = fakeredis.FakeAsyncRedis()
    yield client
    await client.aclose()


@pytest.mark.anyio
async def test_a_reset_count_of_evicted_keys_is_counted_from_zero(
    fake_redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CONFIG RESETSTAT or a restart sets Redis's count of evicted keys back to
    0: what it holds at the next reading was evicted since."""
    readings = iter([5, 0, 3])

    async def reading(_client: Redis, _source: str) -> replay_module._Reading:
        return replay_module._Reading(next(readings), "run-1")

    monkeypatch.setattr(replay_module, "_check_policy", reading)
    clock = Clock()
    cache = RedisReplayCache(fake_redis, hold_s=60, clock=clock)

    first = await cache.check()
    clock.now += 5
    reset = await cache.healthy()
    clock.now += 5
    evicted_since = await cache.healthy()

    assert (first, reset, evicted_since) == (True, True, False)


@pytest.mark.anyio
async def test_a_restarted_redis_closes_the_store_for_the_longest_ttl(
    fake_redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restart may lose every replay key (a Redis without persistence, or since
    its last snapshot) and starts the count of evicted keys at 0 again: only the
    new run id shows it."""
    runs = iter(["run-1", "run-1", "run-2", "run-2", "run-2"])

    async def reading(_client: Redis, _source: str) -> replay_module._Reading:
        return replay_module._Reading(0, next(runs))

    monkeypatch.setattr(replay_module, "_check_policy", reading)
    clock = Clock()
    cache = RedisReplayCache(fake_redis, hold_s=60, clock=clock)

    verdicts = [await cache.check()]
    for step in (5, 5, 30, 31):
        clock.now += step
        verdicts.append(await cache.healthy())

    assert verdicts == [True, True, False, False, True]
