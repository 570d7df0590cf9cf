"""A token's use and its rate limit: one Redis round trip, in the order of the steps.

Every verified assertion is used once, whatever became of its request; a replayed
token is refused as replayed before anything else and is never counted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from gateway import replay as replay_module
from gateway.admission import Admission
from gateway.auth import TokenUse
from gateway.errors import (
    AuthenticationError,
    ConfigError,
    NodeError,
    Reason,
    ThrottledError,
)
from gateway.identifiers import ServiceId
from gateway.replay import MemoryReplayCache, RedisReplayCache
from gateway.throttle import Throttle
from tests.gateway.conftest import KANYASHREE, Harness
from tests.gateway.hostile.support import SABOOJSATHI, SCHOOLS, auth_headers, send

pytestmark = pytest.mark.anyio

CLOSED = "redis://127.0.0.1:1/0"
SCHOOL = f"/{SCHOOLS}/19110900503"
PAYROLL = ServiceId(SCHOOLS.provider, "payroll")


def _use(token_id: str = "jti-1") -> TokenUse:
    return TokenUse(str(KANYASHREE), token_id, 60)


async def _refusal(call: Awaitable[None]) -> Reason | None:
    try:
        await call
    except (AuthenticationError, ThrottledError, NodeError) as exc:
        return exc.reason
    return None


# -- through the exchange --------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "claimed", "refusal"),
    [
        pytest.param(f"/{PAYROLL}/x", None, (404, "unknown_service"), id="step-3"),
        pytest.param(
            f"/{SCHOOLS}/_debug/vars", None, (403, "access_denied"), id="step-4"
        ),
        pytest.param(SCHOOL, str(KANYASHREE), (401, "client_mismatch"), id="step-2"),
    ],
)
async def test_a_token_refused_after_verification_is_used(
    harness: Harness, path: str, claimed: str | None, refusal: tuple[int, str]
) -> None:
    """A token captured from a refused request cannot serve another one."""
    headers = auth_headers(harness, SABOOJSATHI)
    refused = {**headers, "x-road-client": claimed} if claimed else headers

    first = await send(harness, "GET", path, client=None, headers=refused)
    again = await send(harness, "GET", SCHOOL, client=None, headers=headers)

    assert (first.status_code, first.headers["x-road-error"]) == (
        refusal[0],
        f"Client.{refusal[1]}",
    )
    assert again.status_code == 401
    assert again.headers["x-road-error"] == "Client.token_replayed"


@pytest.mark.parametrize(
    "path",
    [pytest.param(SCHOOL, id="allowed"), pytest.param(f"/{PAYROLL}/x", id="unknown")],
)
async def test_a_replayed_token_is_refused_as_replayed_first(
    harness: Harness, path: str
) -> None:
    headers = auth_headers(harness, SABOOJSATHI)
    forwarded = await send(harness, "GET", SCHOOL, client=None, headers=headers)
    assert "x-road-error" not in forwarded.headers

    again = await send(harness, "GET", path, client=None, headers=headers)

    assert again.status_code == 401
    assert again.headers["x-road-error"] == "Client.token_replayed"
    record = (await harness.exchanges())[-1]
    assert record["reason"] == "jti_replayed"
    assert record["upstream_called"] is False


async def test_a_replay_is_not_counted_against_the_client(harness: Harness) -> None:
    """Replaying a captured token cannot spend its client's rate limit."""
    throttle = harness.node.shared.throttle
    admission = Admission(MemoryReplayCache(), throttle)
    await admission.admit(_use(), KANYASHREE, SCHOOLS, "2/minute")

    for _ in range(5):
        assert (
            await _refusal(admission.admit(_use(), KANYASHREE, SCHOOLS, "2/minute"))
            is Reason.TOKEN_REPLAYED
        )

    await admission.admit(_use("jti-2"), KANYASHREE, SCHOOLS, "2/minute")


# -- in one Redis round trip -----------------------------------------------------------


@pytest.fixture
async def shared_redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def combined(shared_redis: aioredis.Redis) -> Admission:
    """Replay cache and rate limits in one Redis, as a node with ``redis.url``."""
    return Admission(
        RedisReplayCache(shared_redis), Throttle("100/second", 8, redis=shared_redis)
    )


def _count_commands(
    client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> list[str]:
    sent: list[str] = []
    real: Callable[..., Awaitable[Any]] = client.execute_command

    async def counted(*args: Any, **options: Any) -> Any:
        sent.append(str(args[0]))
        return await real(*args, **options)

    monkeypatch.setattr(client, "execute_command", counted)
    return sent


@pytest.mark.redis
async def test_an_admitted_exchange_takes_one_redis_command(
    shared_redis: aioredis.Redis, combined: Admission, monkeypatch: pytest.MonkeyPatch
) -> None:
    admission = combined
    await admission.admit(
        _use("warm-up"), KANYASHREE, SCHOOLS, None
    )  # loads the script
    sent = _count_commands(shared_redis, monkeypatch)

    await admission.admit(_use(), KANYASHREE, SCHOOLS, None)
    refused = await _refusal(admission.admit(_use(), KANYASHREE, SCHOOLS, None))

    assert admission.combined
    assert refused is Reason.TOKEN_REPLAYED
    assert sent == ["EVALSHA", "EVALSHA"]


@pytest.mark.redis
async def test_a_refused_hit_takes_one_command_and_uses_the_token(
    shared_redis: aioredis.Redis, combined: Admission, monkeypatch: pytest.MonkeyPatch
) -> None:
    admission = combined
    await admission.admit(_use("first"), KANYASHREE, SCHOOLS, "1/minute")
    sent = _count_commands(shared_redis, monkeypatch)

    with pytest.raises(ThrottledError) as refused:
        await admission.admit(_use("second"), KANYASHREE, SCHOOLS, "1/minute")

    assert sent == ["EVALSHA"]
    assert 59 <= int(refused.value.headers["Retry-After"]) <= 60
    assert await _refusal(admission.spend(_use("second"))) is Reason.TOKEN_REPLAYED


@pytest.mark.redis
async def test_replays_are_not_counted_in_redis(combined: Admission) -> None:
    admission = combined
    await admission.admit(_use(), KANYASHREE, SCHOOLS, "2/minute")
    for _ in range(3):
        await _refusal(admission.admit(_use(), KANYASHREE, SCHOOLS, "2/minute"))

    await admission.admit(_use("jti-2"), KANYASHREE, SCHOOLS, "2/minute")
    refused = await _refusal(
        admission.admit(_use("jti-3"), KANYASHREE, SCHOOLS, "2/minute")
    )

    assert refused is Reason.RATE_LIMITED


@pytest.mark.redis
async def test_keys_of_the_node_replay_cache_are_the_ones_written(
    shared_redis: aioredis.Redis,
) -> None:
    """A node on the combined path and one on the plain cache see the same uses."""
    cache = RedisReplayCache(shared_redis)
    admission = Admission(cache, Throttle("100/second", 8, redis=shared_redis))
    await admission.admit(_use(), KANYASHREE, SCHOOLS, None)

    assert await cache.first_use(str(KANYASHREE), "jti-1", 60) is False
    assert await shared_redis.ttl(cache.key(str(KANYASHREE), "jti-1")) > 0


@pytest.mark.redis
async def test_a_separate_replay_redis_takes_the_two_step_path(
    shared_redis: aioredis.Redis, redis_url: str
) -> None:
    other = aioredis.from_url(redis_url)
    try:
        admission = Admission(
            RedisReplayCache(other), Throttle("100/second", 8, redis=shared_redis)
        )
        await admission.admit(_use(), KANYASHREE, SCHOOLS, None)
        refused = await _refusal(admission.admit(_use(), KANYASHREE, SCHOOLS, None))
    finally:
        await other.aclose()

    assert not admission.combined
    assert refused is Reason.TOKEN_REPLAYED


async def test_an_unreachable_redis_fails_closed_on_the_combined_path() -> None:
    """The rate limit alone would fall back per node; the use cannot."""
    client = aioredis.from_url(CLOSED)
    try:
        admission = Admission(
            RedisReplayCache(client), Throttle("100/second", 8, redis=client)
        )
        with pytest.raises(NodeError) as refused:
            await admission.admit(_use(), KANYASHREE, SCHOOLS, None)
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
            await admission.admit(_use(), KANYASHREE, SCHOOLS, None)
    finally:
        await client.aclose()

    assert refused.value.log_reason == "replay_store_evicts"


async def test_without_redis_the_use_and_the_hit_stay_in_the_process() -> None:
    admission = Admission(MemoryReplayCache(), Throttle("100/second", 8))
    await admission.admit(_use(), KANYASHREE, SCHOOLS, "1/minute")

    second = await _refusal(
        admission.admit(_use("jti-2"), KANYASHREE, SCHOOLS, "1/minute")
    )
    replayed = await _refusal(admission.spend(_use("jti-2")))

    assert not admission.combined
    assert second is Reason.RATE_LIMITED
    assert replayed is Reason.TOKEN_REPLAYED
