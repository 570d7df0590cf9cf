"""A token's use and its rate-limit hit: one Redis command, replays never counted.

gateway.admission on its own: the combined script when the replay cache and the
rate limits share one Redis, the two-step path otherwise, and Redis failures.
"""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from gateway import replaywatch as replay_module
from gateway.admission import Admission
from gateway.errors import ConfigError, NodeError, Reason, ThrottledError
from gateway.replay import MemoryReplayCache, RedisReplayCache
from gateway.throttle import KEY_PREFIX, LocalWindow, Throttle
from tests.gateway.admission_support import count_commands, refusal, token_use
from tests.gateway.conftest import KANYASHREE
from tests.gateway.hostile.support import SABOOJSATHI, SCHOOLS, STUDENTS

pytestmark = pytest.mark.anyio

CLOSED = "redis://127.0.0.1:1/0"


# -- in one Redis round trip -----------------------------------------------------------


@pytest.mark.redis
async def test_an_admitted_exchange_takes_one_redis_command(
    shared_redis: aioredis.Redis, combined: Admission, monkeypatch: pytest.MonkeyPatch
) -> None:
    admission = combined
    await shared_redis.script_flush()
    await admission.throttle.preload()
    sent = count_commands(shared_redis, monkeypatch)

    await admission.admit(token_use(), KANYASHREE, SCHOOLS, None)
    refused = await refusal(admission.admit(token_use(), KANYASHREE, SCHOOLS, None))

    assert admission.combined
    assert refused is Reason.TOKEN_REPLAYED
    assert sent == ["EVALSHA", "EVALSHA"]


@pytest.mark.redis
async def test_a_refused_hit_takes_one_command_and_uses_the_token(
    shared_redis: aioredis.Redis, combined: Admission, monkeypatch: pytest.MonkeyPatch
) -> None:
    admission = combined
    await admission.admit(token_use("first"), KANYASHREE, SCHOOLS, "1/minute")
    sent = count_commands(shared_redis, monkeypatch)

    with pytest.raises(ThrottledError) as refused:
        await admission.admit(token_use("second"), KANYASHREE, SCHOOLS, "1/minute")

    assert sent == ["EVALSHA"]
    assert 59 <= int(refused.value.headers["Retry-After"]) <= 60
    assert (
        await refusal(admission.record_use(token_use("second")))
        is Reason.TOKEN_REPLAYED
    )


@pytest.mark.redis
async def test_replays_are_not_counted_in_redis(combined: Admission) -> None:
    admission = combined
    await admission.admit(token_use(), KANYASHREE, SCHOOLS, "2/minute")
    for _ in range(3):
        await refusal(admission.admit(token_use(), KANYASHREE, SCHOOLS, "2/minute"))

    await admission.admit(token_use("jti-2"), KANYASHREE, SCHOOLS, "2/minute")
    refused = await refusal(
        admission.admit(token_use("jti-3"), KANYASHREE, SCHOOLS, "2/minute")
    )

    assert refused is Reason.RATE_LIMITED


@pytest.mark.redis
async def test_keys_of_the_node_replay_cache_are_the_ones_written(
    shared_redis: aioredis.Redis,
) -> None:
    """A node on the combined path and one on the plain cache see the same uses."""
    cache = RedisReplayCache(shared_redis)
    admission = Admission(cache, Throttle("100/second", 8, redis=shared_redis))
    await admission.admit(token_use(), KANYASHREE, SCHOOLS, None)

    assert await cache.first_use(str(KANYASHREE), "jti-1", 60) is False
    assert await shared_redis.ttl(cache.key(str(KANYASHREE), "jti-1")) > 0


@pytest.mark.redis
async def test_a_token_burst_over_the_limit_uses_every_token(
    combined: Admission, shared_redis: aioredis.Redis
) -> None:
    """30 tokens at once against 10/minute: exactly 10 admitted, all 30
    recorded as used, and every key with an expiry."""
    uses = [token_use(f"burst-{n}") for n in range(30)]

    refusals = await asyncio.gather(
        *(refusal(combined.admit(u, KANYASHREE, SCHOOLS, "10/minute")) for u in uses)
    )

    assert refusals.count(None) == 10
    assert refusals.count(Reason.RATE_LIMITED) == 20
    for use in uses:
        assert await refusal(combined.record_use(use)) is Reason.TOKEN_REPLAYED
    keys = [key async for key in shared_redis.scan_iter("*")]
    assert len(keys) == 31
    assert all([await shared_redis.ttl(key) > 0 for key in keys])


# -- the shared moving window ----------------------------------------------------------


@pytest.mark.redis
async def test_distinct_triples_have_distinct_windows(
    combined: Admission, shared_redis: aioredis.Redis
) -> None:
    """Client, service and rate each make their own window."""
    triples = [
        (KANYASHREE, SCHOOLS, "1/minute"),
        (SABOOJSATHI, SCHOOLS, "1/minute"),
        (KANYASHREE, STUDENTS, "1/minute"),
        (KANYASHREE, SCHOOLS, "1/hour"),
        (KANYASHREE, SCHOOLS, "2/minute"),
    ]
    for n, (client, service, rate) in enumerate(triples):
        assert (
            await refusal(combined.admit(token_use(f"t{n}"), client, service, rate))
            is None
        )
    windows = [k async for k in shared_redis.scan_iter(f"{KEY_PREFIX}*")]
    assert len(windows) == len(triples)
    assert (
        await refusal(
            combined.admit(token_use("again"), KANYASHREE, SCHOOLS, "1/minute")
        )
        is Reason.RATE_LIMITED
    )


@pytest.mark.redis
async def test_limit_zero_admits_nothing_and_still_uses_the_token(
    combined: Admission, shared_redis: aioredis.Redis
) -> None:
    """A limit of 0 refuses at once, writes no window, and the token is used."""
    with pytest.raises(ThrottledError) as refused:
        await combined.admit(token_use(), KANYASHREE, SCHOOLS, "0/minute")

    assert refused.value.headers["Retry-After"] == "60"
    assert await refusal(combined.record_use(token_use())) is Reason.TOKEN_REPLAYED
    assert [k async for k in shared_redis.scan_iter(f"{KEY_PREFIX}*")] == []
    assert LocalWindow().hit("k", 0, 60.0) == 60.0


@pytest.mark.redis
async def test_the_shared_window_moves_as_the_local_one(combined: Admission) -> None:
    """2/second holds in every second, not per fixed second: the same
    sequence on LocalWindow (fake clock) admits the same hits."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    times: list[float] = []
    shared: list[bool] = []
    for n, at in enumerate([0.0, 0.0, 0.0, 0.55, 1.1, 1.1, 1.1]):
        await asyncio.sleep(max(0.0, start + at - loop.time()))
        times.append(loop.time() - start)
        refused = await refusal(
            combined.admit(token_use(f"w{n}"), KANYASHREE, SCHOOLS, "2/second")
        )
        shared.append(refused is None)

    clock = iter(times)
    local = LocalWindow(clock=lambda: next(clock))
    expected = [local.hit("k", 2, 1.0) is None for _ in times]
    assert shared == expected == [True, True, False, False, True, True, False]


# -- two steps, and Redis failures -----------------------------------------------------


@pytest.mark.redis
async def test_a_separate_replay_redis_takes_the_two_step_path(
    shared_redis: aioredis.Redis, redis_url: str
) -> None:
    other = aioredis.from_url(redis_url)
    try:
        admission = Admission(
            RedisReplayCache(other), Throttle("100/second", 8, redis=shared_redis)
        )
        await admission.admit(token_use(), KANYASHREE, SCHOOLS, None)
        refused = await refusal(admission.admit(token_use(), KANYASHREE, SCHOOLS, None))
    finally:
        await other.aclose()

    assert not admission.combined
    assert refused is Reason.TOKEN_REPLAYED


@pytest.mark.redis
async def test_the_rate_alone_falls_back_when_only_its_redis_fails(
    shared_redis: aioredis.Redis,
) -> None:
    """Replay Redis up, rate Redis down (``redis.replay_url``): the use is
    recorded, the rate is counted on this node with a WARNING."""
    down = aioredis.from_url(CLOSED)
    try:
        admission = Admission(
            RedisReplayCache(shared_redis), Throttle("100/second", 8, redis=down)
        )
        with capture_logs() as logs:
            first = await refusal(
                admission.admit(token_use("a"), KANYASHREE, SCHOOLS, "1/minute")
            )
            second = await refusal(
                admission.admit(token_use("b"), KANYASHREE, SCHOOLS, "1/minute")
            )
            replay = await refusal(
                admission.admit(token_use("a"), KANYASHREE, SCHOOLS, "1/minute")
            )
    finally:
        await down.aclose()

    assert not admission.combined
    assert (first, second, replay) == (None, Reason.RATE_LIMITED, Reason.TOKEN_REPLAYED)
    warnings = [e for e in logs if e["event"] == "throttle.redis_unavailable"]
    assert len(warnings) == 2
    assert all(e["log_level"] == "warning" for e in warnings)


async def test_preloading_on_an_unreachable_redis_raises_nothing() -> None:
    """The node starts anyway; its first exchange loads the script or fails closed."""
    client = aioredis.from_url(CLOSED)
    try:
        await Throttle("100/second", 8, redis=client).preload()
    finally:
        await client.aclose()


async def test_an_unreachable_redis_fails_closed_on_the_combined_path() -> None:
    """The rate limit alone would fall back per node; the use cannot."""
    client = aioredis.from_url(CLOSED)
    try:
        admission = Admission(
            RedisReplayCache(client), Throttle("100/second", 8, redis=client)
        )
        with pytest.raises(NodeError) as refused:
            await admission.admit(token_use(), KANYASHREE, SCHOOLS, None)
    finally:
        await client.aclose()

    assert refused.value.reason is Reason.REPLAY_STORE_UNAVAILABLE
    assert refused.value.log_reason == "replay_store_error"


async def test_the_deferred_eviction_check_runs_on_the_combined_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def evicting(_client: object, source: str) -> None:
        raise ConfigError(source, "maxmemory-policy is 'allkeys-lru'")

    monkeypatch.setattr(replay_module, "_check_policy", evicting)
    client = aioredis.from_url(CLOSED)
    try:
        admission = Admission(
            RedisReplayCache(client, checked=False),
            Throttle("100/second", 8, redis=client),
        )
        with pytest.raises(NodeError) as refused:
            await admission.admit(token_use(), KANYASHREE, SCHOOLS, None)
    finally:
        await client.aclose()

    assert refused.value.log_reason == "replay_store_evicts"


async def test_without_redis_the_use_and_the_hit_stay_in_the_process() -> None:
    admission = Admission(MemoryReplayCache(), Throttle("100/second", 8))
    await admission.admit(token_use(), KANYASHREE, SCHOOLS, "1/minute")

    second = await refusal(
        admission.admit(token_use("jti-2"), KANYASHREE, SCHOOLS, "1/minute")
    )
    replayed = await refusal(admission.record_use(token_use("jti-2")))

    assert not admission.combined
    assert second is Reason.RATE_LIMITED
    assert replayed is Reason.TOKEN_REPLAYED


async def test_without_redis_a_replay_is_not_counted() -> None:
    """On the two-step path (memory cache, node window) a replay is not
    counted either."""
    admission = Admission(MemoryReplayCache(), Throttle("100/second", 8))
    assert (
        await refusal(admission.admit(token_use(), KANYASHREE, SCHOOLS, "1/minute"))
        is None
    )
    for _ in range(3):
        assert (
            await refusal(admission.admit(token_use(), KANYASHREE, SCHOOLS, "1/minute"))
            is Reason.TOKEN_REPLAYED
        )
    assert (
        await refusal(admission.admit(token_use("b"), KANYASHREE, SCHOOLS, "1/minute"))
        is Reason.RATE_LIMITED
    )
