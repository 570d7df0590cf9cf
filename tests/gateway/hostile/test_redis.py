"""C33 and C39 against real Redis, and Redis faults: replay protection fails
closed, rate limits fall back per node with a WARNING and recover by themselves."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from gateway.errors import NodeError, ThrottledError
from gateway.replay import RedisReplayCache
from gateway.throttle import Throttle
from tests.gateway.conftest import KANYASHREE
from tests.gateway.hostile.support import SCHOOLS

pytestmark = pytest.mark.anyio

CLOSED = "redis://127.0.0.1:1/0"


async def _hits(throttle: Throttle, count: int, rate: str) -> list[bool]:
    async def one() -> bool:
        try:
            await throttle.hit(KANYASHREE, SCHOOLS, rate)
        except ThrottledError as exc:
            return int(exc.headers["Retry-After"]) < 1
        return True

    return list(await asyncio.gather(*(one() for _ in range(count))))


@pytest.mark.redis
async def test_fifty_concurrent_hits_admit_exactly_the_limit(redis_url: str) -> None:
    """C39 A: the count is one atomic step, so a burst cannot pass the limit."""
    throttle = Throttle("200/second", 64, redis_url)

    results = await _hits(throttle, 50, "10/minute")
    await throttle.aclose()

    assert results.count(True) == 10


@pytest.mark.redis
async def test_two_nodes_sharing_redis_share_the_limit(redis_url: str) -> None:
    """C39 D: 8 and 8 against 10/minute: 10 admitted in total."""
    first, second = (Throttle("200/second", 64, redis_url) for _ in range(2))

    results = await _hits(first, 8, "10/minute") + await _hits(second, 8, "10/minute")
    await first.aclose()
    await second.aclose()

    assert results.count(True) == 10


@pytest.mark.redis
async def test_no_counter_key_lives_without_an_expiry(redis_url: str) -> None:
    """C39 B: every key the limiter writes carries a TTL."""
    throttle = Throttle("200/second", 64, redis_url)
    await _hits(throttle, 12, "10/minute")
    await throttle.aclose()
    client = aioredis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter("mediator-rate*")]
        ttls = [await client.ttl(key) for key in keys]
    finally:
        await client.aclose()

    assert keys
    assert all(ttl > 0 for ttl in ttls)


async def test_unreachable_redis_falls_back_per_node_with_a_warning() -> None:
    """C39 C: the documented choice: counted on this node, never a 500."""
    throttle = Throttle("200/second", 64, CLOSED)

    with capture_logs() as logs:
        results = await _hits(throttle, 12, "10/minute")
    await throttle.aclose()

    assert results.count(True) == 10
    warnings = [e for e in logs if e["event"] == "throttle.redis_unavailable"]
    assert warnings
    assert all(e["log_level"] == "warning" for e in warnings)


@pytest.mark.redis
async def test_shared_limits_return_when_redis_answers_again(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recovery without restart: the next hit after an outage goes to Redis."""
    throttle = Throttle("200/second", 64, redis_url)
    down = Throttle("1/second", 1, CLOSED)
    healthy = throttle._script
    monkeypatch.setattr(throttle, "_script", down._script)
    with capture_logs() as outage:
        await _hits(throttle, 3, "10/minute")
    monkeypatch.setattr(throttle, "_script", healthy)

    with capture_logs() as recovered:
        await _hits(throttle, 3, "10/minute")
    await throttle.aclose()
    await down.aclose()

    assert any(e["event"] == "throttle.redis_unavailable" for e in outage)
    assert not any(e["event"] == "throttle.redis_unavailable" for e in recovered)
    client = aioredis.from_url(redis_url)
    try:
        assert [key async for key in client.scan_iter("mediator-rate*")]
    finally:
        await client.aclose()


@pytest.mark.redis
async def test_twenty_concurrent_copies_of_one_token_id_are_accepted_once(
    redis_url: str,
) -> None:
    """C33 D: one atomic SET NX per use."""
    client = aioredis.from_url(redis_url)
    cache = RedisReplayCache(client)
    try:
        results = await asyncio.gather(
            *(cache.first_use("WB/GOV/WCD/kanyashree", "J3", 300) for _ in range(20))
        )
        ttl = await client.ttl(cache.key("WB/GOV/WCD/kanyashree", "J3"))
    finally:
        await client.aclose()

    assert results.count(True) == 1
    assert 0 < ttl <= 300


@pytest.mark.redis
async def test_the_same_token_id_of_two_issuers_is_accepted_for_each(
    redis_url: str,
) -> None:
    """C33 F: replay keys are namespaced by issuer."""
    client = aioredis.from_url(redis_url)
    cache = RedisReplayCache(client)
    try:
        first = await cache.first_use("WB/GOV/WCD/kanyashree", "1", 300)
        second = await cache.first_use("WB/GOV/FIN/ifms", "1", 300)
    finally:
        await client.aclose()

    assert (first, second) == (True, True)


async def test_unreachable_redis_fails_replay_protection_closed() -> None:
    """C33 G: replay_store_unavailable, never 'skip the check'."""
    client = aioredis.from_url(CLOSED)
    cache = RedisReplayCache(client)
    try:
        with pytest.raises(NodeError, match="replay") as raised:
            await cache.first_use("WB/GOV/WCD/kanyashree", "J9", 300)
    finally:
        await client.aclose()

    assert raised.value.status == 503
