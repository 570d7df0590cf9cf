"""Replay caches: once per (namespace, token id), bounded, atomic, fail closed."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import math
import tracemalloc
from collections.abc import AsyncIterator

import anyio
import fakeredis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.errors import NodeError, Reason
from gateway.replay import MemoryReplayCache, RedisReplayCache, ReplayCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- memory ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_memory_accepts_a_token_id_once() -> None:
    cache = MemoryReplayCache()

    first = await cache.first_use("WB/GOV/WCD/kanyashree", "J1", 300)
    second = await cache.first_use("WB/GOV/WCD/kanyashree", "J1", 300)

    assert (first, second) == (True, False)


@pytest.mark.anyio
async def test_memory_namespaces_are_separate() -> None:
    cache = MemoryReplayCache()

    assert await cache.first_use("WB/GOV/WCD/kanyashree", "1", 300)
    assert await cache.first_use("WB/GOV/FIN/ifms", "1", 300)


@pytest.mark.anyio
async def test_memory_entry_expires_after_its_ttl() -> None:
    clock = Clock()
    cache = MemoryReplayCache(clock=clock)
    await cache.first_use("ns", "J1", 10)

    clock.now += 9
    still_live = await cache.first_use("ns", "J1", 10)
    clock.now += 2
    after_expiry = await cache.first_use("ns", "J1", 10)

    assert (still_live, after_expiry) == (False, True)


@pytest.mark.anyio
async def test_memory_evicts_after_an_idle_gap_and_keeps_later_entries() -> None:
    clock = Clock()
    cache = MemoryReplayCache(clock=clock)
    await cache.first_use("ns", "short", 10)
    await cache.first_use("ns", "long", 1000)

    clock.now += 500  # far more seconds than there are buckets
    await cache.first_use("ns", "new", 10)
    after_gap = len(cache)
    long_still_refused = not await cache.first_use("ns", "long", 1000)
    clock.now += 2000
    await cache.first_use("ns", "last", 10)

    assert after_gap == 2  # "short" gone; "long" and "new" live
    assert long_still_refused
    assert len(cache) == 1


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=40),
            st.sampled_from(["a", "b", "c", "d"]),
            st.sampled_from(["ns1", "ns2"]),
            st.integers(min_value=1, max_value=100),
        ),
        max_size=60,
    )
)
def test_memory_answers_like_a_plain_table_of_deadlines(
    uses: list[tuple[float, str, str, int]],
) -> None:
    clock = Clock()
    cache = MemoryReplayCache(clock=clock)
    model: dict[tuple[str, str], int] = {}

    async def replay() -> None:
        for advance, token, namespace, ttl in uses:
            clock.now += advance
            expected = model.get((namespace, token), -1) <= clock.now
            if expected:
                model[(namespace, token)] = math.ceil(clock.now + ttl)
            assert await cache.first_use(namespace, token, ttl) is expected
            live = sum(deadline > clock.now for deadline in model.values())
            assert live <= len(cache) <= len(model)

    asyncio.run(replay())


@pytest.mark.anyio
async def test_memory_full_of_live_entries_fails_closed() -> None:
    cache = MemoryReplayCache(max_entries=2)
    await cache.first_use("ns", "a", 60)
    await cache.first_use("ns", "b", 60)

    with pytest.raises(NodeError) as info:
        await cache.first_use("ns", "c", 60)

    assert info.value.reason is Reason.REPLAY_STORE_UNAVAILABLE
    assert not await cache.first_use("ns", "a", 60)


@pytest.mark.anyio
async def test_memory_full_cache_evicts_only_expired_entries() -> None:
    clock = Clock()
    cache = MemoryReplayCache(max_entries=2, clock=clock)
    await cache.first_use("ns", "short", 5)
    await cache.first_use("ns", "long", 600)

    clock.now += 10
    accepted = await cache.first_use("ns", "new", 60)

    assert accepted
    assert len(cache) == 2
    assert not await cache.first_use("ns", "long", 600)


@pytest.mark.anyio
async def test_memory_full_cache_drops_expired_entries_of_the_current_slot() -> None:
    clock = Clock()
    cache = MemoryReplayCache(max_entries=2, clock=clock)
    await cache.first_use("ns", "short", 1)  # deadline 1001, in the slot ending 1008
    await cache.first_use("ns", "long", 600)

    clock.now += 3
    accepted = await cache.first_use("ns", "new", 60)

    assert accepted
    assert len(cache) == 2


def test_memory_gives_back_a_burst_once_it_has_expired() -> None:
    # One table for every entry would keep the size the burst grew it to.
    clock = Clock()
    cache = MemoryReplayCache(clock=clock)

    async def use(prefix: str, count: int) -> None:
        for n in range(count):
            await cache.first_use("ns", f"{prefix}{n}", 30)

    tracemalloc.start()
    try:
        asyncio.run(use("burst-", 50_000))
        burst = tracemalloc.get_traced_memory()[0]
        clock.now += 60
        asyncio.run(use("quiet-", 100))
        gc.collect()
        quiet = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()

    assert len(cache) == 100
    assert quiet < burst / 10


@pytest.mark.anyio
async def test_empty_memory_cache_is_truthy() -> None:
    assert MemoryReplayCache()


# -- fakeredis -------------------------------------------------------------------------


@pytest.fixture
async def fake_redis() -> AsyncIterator[Redis]:
    client = fakeredis.FakeAsyncRedis()
    yield client
    await client.aclose()


@pytest.mark.anyio
async def test_redis_accepts_once_and_sets_ttl(fake_redis: Redis) -> None:
    cache = RedisReplayCache(fake_redis)

    first = await cache.first_use("WB/GOV/WCD/kanyashree", "J1", 360)
    second = await cache.first_use("WB/GOV/WCD/kanyashree", "J1", 360)

    digest = hashlib.sha256(b"J1").hexdigest()
    key = f"replay:WB/GOV/WCD/kanyashree:{digest}"
    assert (first, second) == (True, False)
    assert 0 < await fake_redis.ttl(key) <= 360


@pytest.mark.anyio
async def test_redis_stores_no_raw_token_id(fake_redis: Redis) -> None:
    await RedisReplayCache(fake_redis).first_use("ns", "secret-jti", 60)

    keys = await fake_redis.keys("*")

    assert all(b"secret-jti" not in key for key in keys)


class _Unreachable:
    async def set(self, *args: object, **kwargs: object) -> None:
        raise RedisConnectionError("connection refused")


@pytest.mark.anyio
async def test_c33_g_unreachable_redis_fails_closed() -> None:
    cache = RedisReplayCache(_Unreachable())  # type: ignore[arg-type]

    with pytest.raises(NodeError) as info:
        await cache.first_use("ns", "J1", 60)

    assert info.value.reason is Reason.REPLAY_STORE_UNAVAILABLE
    assert "connection refused" not in str(info.value)


# -- real Redis ------------------------------------------------------------------------


@pytest.fixture
async def real_redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.flushdb()
    await client.aclose()


async def _concurrent(cache: ReplayCache, count: int) -> list[bool]:
    results: list[bool] = []

    async def use() -> None:
        results.append(await cache.first_use("WB/GOV/WCD/kanyashree", "J3", 300))

    async with anyio.create_task_group() as group:
        for _ in range(count):
            group.start_soon(use)
    return results


@pytest.mark.redis
@pytest.mark.anyio
async def test_c33_d_concurrent_uses_accept_exactly_one(real_redis: Redis) -> None:
    results = await _concurrent(RedisReplayCache(real_redis), 20)

    assert sorted(results) == [False] * 19 + [True]


@pytest.mark.redis
@pytest.mark.anyio
async def test_c33_f_namespaces_are_separate_in_redis(real_redis: Redis) -> None:
    cache = RedisReplayCache(real_redis)

    assert await cache.first_use("WB/GOV/WCD/kanyashree", "1", 60)
    assert await cache.first_use("WB/GOV/FIN/ifms", "1", 60)


@pytest.mark.redis
@pytest.mark.anyio
async def test_redis_key_has_ttl(real_redis: Redis) -> None:
    cache = RedisReplayCache(real_redis)

    await cache.first_use("ns", "J1", 360)

    assert 350 <= await real_redis.ttl(cache.key("ns", "J1")) <= 360


@pytest.mark.anyio
async def test_memory_concurrent_uses_accept_exactly_one() -> None:
    results = await _concurrent(MemoryReplayCache(), 20)

    assert sorted(results) == [False] * 19 + [True]
