"""C33 B: replay keys live where Redis cannot evict them. The node refuses a replay
Redis whose ``maxmemory-policy`` evicts, unless ``redis.replay_url`` names one with
``noeviction``, and checks again while it runs: a store found evicting, or that
has evicted keys, refuses every use until it is safe again.

The start checks set the policy on the shared Redis with CONFIG SET and restore
it; the checks while the node runs change a private redis-server's configuration
(``private_redis``), never the shared one's."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
import redis
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from gateway.admission import Admission
from gateway.errors import ConfigError, NodeError, Reason
from gateway.replay import RedisReplayCache, open_replay_cache
from gateway.replaywatch import check_replay_store
from gateway.settings import RedisSettings
from gateway.throttle import KEY_PREFIX, Throttle
from tests.gateway.admission_support import count_commands, refusal, token_use
from tests.gateway.conftest import KANYASHREE, Harness
from tests.gateway.hostile.support import SCHOOLS, send

pytestmark = pytest.mark.anyio

CLOSED = "redis://127.0.0.1:1/0"
#: A check interval short enough for a test to wait it out.
SHORT_S = 0.05
ISSUER = "WB/GOV/BCW/saboojsathi"


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


def _configure(url: str, **settings: str) -> None:
    """CONFIG SET on a private server (never the shared one)."""
    admin = redis.Redis.from_url(url)
    try:
        for name, value in settings.items():
            admin.config_set(name.replace("_", "-"), value)
    finally:
        admin.close()


def _evict_under_pressure(url: str) -> int:
    """Switch a private server to allkeys-lru with a small cap, fill it, and
    return how many keys it evicted."""
    _configure(url, maxmemory_policy="allkeys-lru", maxmemory="2mb")
    admin = redis.Redis.from_url(url)
    try:
        pipe = admin.pipeline(transaction=False)
        for index in range(3000):
            pipe.set(f"junk{index}", b"x" * 2000)
        pipe.execute()
        evicted: int = admin.info("stats")["evicted_keys"]
    finally:
        admin.close()
    return evicted


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- at start --------------------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-ttl", "allkeys-random"])
async def test_an_evicting_redis_is_refused_at_start(
    redis_url: str, policy: str
) -> None:
    with _policy(redis_url, policy), pytest.raises(ConfigError) as caught:
        await check_replay_store(RedisSettings(url=redis_url))

    assert caught.value.file == "node.yaml redis.url"
    assert policy in caught.value.reason


@pytest.mark.redis
async def test_a_noeviction_redis_passes(redis_url: str) -> None:
    with _policy(redis_url, "noeviction"):
        assert await check_replay_store(RedisSettings(url=redis_url)) is True


@pytest.mark.redis
async def test_a_replay_url_on_the_same_evicting_instance_is_refused(
    redis_url: str,
) -> None:
    other_db = redis_url.rsplit("/", 1)[0] + "/14"
    settings = RedisSettings(url=redis_url, replay_url=other_db)

    with _policy(redis_url, "allkeys-lru"), pytest.raises(ConfigError) as caught:
        await check_replay_store(settings)

    assert caught.value.file == "node.yaml redis.replay_url"


@pytest.mark.redis
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


@pytest.mark.sockets
async def test_an_unreachable_redis_is_checked_on_first_use(private_redis: str) -> None:
    """Unreachable at start: the node starts; the check runs when Redis answers,
    and an evicting Redis then fails closed rather than accept a token."""
    assert await check_replay_store(RedisSettings(url=CLOSED)) is False
    settings = RedisSettings(url=private_redis, replay_check_interval_s=SHORT_S)
    client = aioredis.from_url(private_redis)
    cache = open_replay_cache(settings, client, checked=False)
    try:
        _configure(private_redis, maxmemory_policy="allkeys-lru")
        with pytest.raises(NodeError) as caught:
            await cache.first_use("iss", "J2", 60)
        _configure(private_redis, maxmemory_policy="noeviction")
        await anyio.sleep(2 * SHORT_S)
        accepted = await cache.first_use("iss", "J2", 60)
    finally:
        await client.aclose()

    assert caught.value.log_reason == "replay_store_evicts"
    assert accepted is True


# -- while the node runs ---------------------------------------------------------------


@pytest.mark.sockets
async def test_a_used_token_stays_used_when_the_policy_changes_at_run_time(
    private_redis: str,
) -> None:
    """The attack: the policy becomes allkeys-lru, memory fills, the used token's
    key is evicted, and the token is presented again, also once the policy is
    noeviction again: an evicted key may be live, so the store stays closed."""
    settings = RedisSettings(url=private_redis, replay_check_interval_s=SHORT_S)
    checked = await check_replay_store(settings)
    client = aioredis.from_url(private_redis)
    cache = open_replay_cache(settings, client, checked=checked)
    try:
        assert checked is True
        assert await cache.check() is True  # as the node does at start
        assert await cache.first_use(ISSUER, "J1", 300) is True
        assert _evict_under_pressure(private_redis) > 0
        await anyio.sleep(2 * SHORT_S)
        with pytest.raises(NodeError) as evicting:
            await cache.first_use(ISSUER, "J1", 300)
        _configure(private_redis, maxmemory_policy="noeviction", maxmemory="0")
        await anyio.sleep(2 * SHORT_S)
        with pytest.raises(NodeError) as restored:
            await cache.first_use(ISSUER, "J1", 300)
        healthy = await cache.healthy()
    finally:
        await client.aclose()

    assert evicting.value.reason is Reason.REPLAY_STORE_UNAVAILABLE
    assert evicting.value.log_reason == "replay_store_evicts"
    assert restored.value.log_reason == "replay_store_evicts"
    assert healthy is False


@pytest.mark.sockets
async def test_an_evicting_replay_store_fails_closed_after_start(
    private_redis: str,
) -> None:
    """The rule the node applies when it could not check at start (it refuses
    the token with replay_store_evicts) holds after start as well, with a
    WARNING that names neither a key nor a token."""
    settings = RedisSettings(url=private_redis, replay_check_interval_s=SHORT_S)
    checked = await check_replay_store(settings)
    client = aioredis.from_url(private_redis)
    cache = open_replay_cache(settings, client, checked=checked)
    try:
        _configure(private_redis, maxmemory_policy="allkeys-lru")
        await anyio.sleep(2 * SHORT_S)
        with capture_logs() as logs, pytest.raises(NodeError) as caught:
            await cache.first_use(ISSUER, "J2", 300)
    finally:
        await client.aclose()

    assert caught.value.log_reason == "replay_store_evicts"
    warnings = [e for e in logs if e["event"] == "replay.store_evicts"]
    assert [e["log_level"] for e in warnings] == ["warning"]
    assert "allkeys-lru" in warnings[0]["detail"]
    text = repr(logs)
    assert "J2" not in text
    assert cache.key(ISSUER, "J2").split(":")[-1] not in text
    assert "replay:" not in text


def _info_calls(url: str) -> int:
    """INFO commands the server has run, this one not yet among them."""
    admin = redis.Redis.from_url(url)
    try:
        calls: int = admin.info("commandstats").get("cmdstat_info", {}).get("calls", 0)
    finally:
        admin.close()
    return calls


@pytest.mark.sockets
async def test_the_store_is_checked_once_per_interval_not_per_use(
    private_redis: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    client = aioredis.from_url(private_redis)
    cache = RedisReplayCache(client, check_interval_s=5, clock=clock)
    try:
        sent = count_commands(client, monkeypatch)
        start = _info_calls(private_redis)
        for index in range(20):
            await cache.first_use(ISSUER, f"J{index}", 60)
        within = _info_calls(private_redis) - start - 1
        clock.now += 5
        async with anyio.create_task_group() as group:
            for index in range(20):
                group.start_soon(cache.first_use, ISSUER, f"K{index}", 60)
        due = _info_calls(private_redis) - start - 2 - within
    finally:
        await client.aclose()

    assert sent == ["SET"] * 40
    assert within == 0
    # One check for 20 concurrent uses: INFO memory, stats and server, pipelined.
    assert due == 3


@pytest.mark.sockets
async def test_the_store_recovers_when_the_policy_is_restored(
    private_redis: str,
) -> None:
    """No key was evicted: uses are accepted again at the first check that finds
    noeviction."""
    clock = Clock()
    client = aioredis.from_url(private_redis)
    cache = RedisReplayCache(client, check_interval_s=5, clock=clock)
    try:
        assert await cache.first_use(ISSUER, "J1", 60)
        _configure(private_redis, maxmemory_policy="volatile-lru")
        clock.now += 5
        evicting = await refusal(cache.ready())
        _configure(private_redis, maxmemory_policy="noeviction")
        clock.now += 1
        before_next_check = await refusal(cache.ready())
        clock.now += 4
        with capture_logs() as logs:
            recovered = await cache.first_use(ISSUER, "J2", 60)
        replayed = await cache.first_use(ISSUER, "J1", 60)
    finally:
        await client.aclose()

    assert evicting is Reason.REPLAY_STORE_UNAVAILABLE
    assert before_next_check is Reason.REPLAY_STORE_UNAVAILABLE
    assert (recovered, replayed) == (True, False)
    assert [e["event"] for e in logs] == ["replay.store_safe"]


@pytest.mark.sockets
async def test_evictions_between_two_checks_keep_the_store_closed(
    private_redis: str,
) -> None:
    """The policy goes to allkeys-lru and back between two checks: the policy
    reads noeviction again, but ``evicted_keys`` rose, so an evicted replay key
    may be live. Uses are refused until it would have expired (``hold_s``)."""
    clock = Clock()
    client = aioredis.from_url(private_redis)
    cache = RedisReplayCache(client, check_interval_s=5, hold_s=300, clock=clock)
    try:
        assert await cache.check()  # the first reading of the count
        assert await cache.first_use(ISSUER, "J1", 300)
        assert _evict_under_pressure(private_redis) > 0
        _configure(private_redis, maxmemory_policy="noeviction", maxmemory="0")
        clock.now += 5
        with capture_logs() as logs:
            seen = await refusal(cache.first_use(ISSUER, "J1", 300))
        clock.now += 290
        held = await refusal(cache.ready())
        clock.now += 10
        healthy = await cache.healthy()
        after = await cache.first_use(ISSUER, "J3", 300)
    finally:
        await client.aclose()

    assert seen is Reason.REPLAY_STORE_UNAVAILABLE
    assert held is Reason.REPLAY_STORE_UNAVAILABLE
    (warning,) = [e for e in logs if e["event"] == "replay.store_evicts"]
    assert warning["log_level"] == "warning"
    assert warning["evicted_keys"] > 0
    assert warning["refused_for_s"] == 300
    assert (healthy, after) == (True, True)


@pytest.mark.sockets
async def test_a_store_that_refuses_info_fails_closed(private_redis: str) -> None:
    """A Redis that refuses INFO (an ACL, a renamed command) cannot be checked:
    as at start, uses are refused until a check passes again."""
    clock = Clock()
    client = aioredis.from_url(private_redis)
    cache = RedisReplayCache(client, check_interval_s=5, clock=clock)
    admin = redis.Redis.from_url(private_redis)
    try:
        admin.execute_command("ACL", "SETUSER", "default", "-info")
        started = await check_replay_store(RedisSettings(url=private_redis))
        clock.now += 5
        with capture_logs() as logs, pytest.raises(NodeError) as caught:
            await cache.first_use(ISSUER, "J1", 60)
        healthy = await cache.healthy()
        admin.execute_command("ACL", "SETUSER", "default", "+info")
        clock.now += 5
        accepted = await cache.first_use(ISSUER, "J1", 60)
    finally:
        admin.close()
        await client.aclose()

    assert started is False
    assert caught.value.log_reason == "replay_check_refused"
    assert [e["event"] for e in logs] == ["replay.check_refused"]
    assert (healthy, accepted) == (False, True)


@pytest.mark.sockets
async def test_the_combined_admission_path_refuses_an_evicting_store(
    private_redis: str,
) -> None:
    """Replay SET and rate window in one script: an evicting store refuses the
    exchange before the script runs, so nothing is recorded or counted."""
    clock = Clock()
    client = aioredis.from_url(private_redis)
    admission = Admission(
        RedisReplayCache(client, check_interval_s=5, clock=clock),
        Throttle("100/second", 8, redis=client),
    )
    try:
        assert admission.combined
        await admission.admit(token_use("jti-1"), KANYASHREE, SCHOOLS, None)
        _configure(private_redis, maxmemory_policy="allkeys-lru")
        clock.now += 5
        with pytest.raises(NodeError) as caught:
            await admission.admit(token_use("jti-2"), KANYASHREE, SCHOOLS, None)
        keys = sorted(await client.keys("*"))
        _configure(private_redis, maxmemory_policy="noeviction")
        clock.now += 5
        admitted = await refusal(
            admission.admit(token_use("jti-2"), KANYASHREE, SCHOOLS, None)
        )
        window = await client.llen(next(k for k in keys if k.startswith(b"mediator")))
    finally:
        await client.aclose()

    assert caught.value.reason is Reason.REPLAY_STORE_UNAVAILABLE
    assert caught.value.log_reason == "replay_store_evicts"
    assert len(keys) == 2  # jti-1's replay key and the window: jti-2 left nothing
    assert any(key.startswith(KEY_PREFIX.encode()) for key in keys)
    assert admitted is None
    assert window == 2


# -- a running node --------------------------------------------------------------------


@pytest.fixture
def private_env(private_redis: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MEDIATOR_REDIS_URL", private_redis)
    monkeypatch.setenv("MEDIATOR_REDIS_REPLAY_CHECK_S", str(SHORT_S))
    return private_redis


@pytest.fixture
async def private_harness(private_env: str, harness: Harness) -> Harness:
    """The in-process node of ``harness``, with ``redis.url`` on a private server."""
    assert harness.node.redis is not None
    assert harness.node.pipeline._admission.combined
    harness.node.ops.health = type(harness.node.ops.health)(0)  # no cached answer
    return harness


async def _health(harness: Harness) -> Any:
    return (await harness.http.get(f"{harness.demo.mediator_url}/admin/health")).json()


@pytest.mark.sockets
async def test_a_node_whose_replay_store_starts_evicting_fails_closed_and_recovers(
    private_harness: Harness, private_env: str
) -> None:
    harness = private_harness
    school = f"/{SCHOOLS}/19110900503"
    before = await _health(harness)
    served = await send(harness, "GET", school)

    _configure(private_env, maxmemory_policy="allkeys-lru")
    await anyio.sleep(2 * SHORT_S)
    with capture_logs() as logs:
        evicting = await _health(harness)
        allowed = await send(harness, "GET", school)
        denied = await send(harness, "GET", f"/{SCHOOLS}/_debug/vars")
    records = (await harness.exchanges())[-2:]

    _configure(private_env, maxmemory_policy="noeviction")
    await anyio.sleep(2 * SHORT_S)
    after = await _health(harness)
    again = await send(harness, "GET", school)

    assert before["status"] == "ok"
    assert before["checks"]["replay_store"] is True
    assert "x-road-error" not in served.headers  # forwarded
    assert evicting["status"] == "unavailable"
    assert evicting["checks"]["replay_store"] is False
    assert evicting["checks"]["redis"] is True
    for answer in (allowed, denied):  # the combined path, and record_use alone
        assert answer.status_code == 503
        assert (
            answer.headers["x-road-error"] == "Server.Mediator.replay_store_unavailable"
        )
    assert [r["reason"] for r in records] == ["replay_store_evicts"] * 2
    assert [e["log_level"] for e in logs if e["event"] == "replay.store_evicts"] == [
        "warning"
    ]
    assert after["status"] == "ok"
    assert after["checks"]["replay_store"] is True
    assert "x-road-error" not in again.headers
