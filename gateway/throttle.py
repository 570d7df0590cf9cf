"""Step 5 of an exchange: rate limits and concurrency per client and service.

Limits are keyed by the authenticated client and the service, never by a header
value, so spelling a credential differently or claiming another address cannot buy
a fresh bucket. The window is a moving window (a log of the admitted hits'
times), so a limit of N holds in *every* window of its length, also across a
minute boundary (C39 E); a sliding-window counter only approximates that and lets
up to 2N through when a burst ends one window and another starts the next. With
Redis the log is shared by every node: one Lua script (:data:`WINDOW_SCRIPT`)
checks and counts a hit atomically, on Redis's own clock, so nodes whose clocks
disagree still share one window, and every key it writes carries its expiry.
Without Redis each node keeps its own log and says so at start.

The same script can first record a token's first use (the replay check of step
2), so that an exchange costs one Redis round trip, not two
(:meth:`Throttle.first_use_and_hit`). A replayed token is then refused before
it is counted: replaying a captured token cannot spend its client's limit.

The in-process log is this module's own :class:`LocalWindow` rather than the
``limits`` library's memory storage: that storage inserts every hit at the head
of a list and expires old hits in a task that makes a thread-pool round trip per
key, which cost over a hundred microseconds of CPU per exchange on a busy node.
Here a hit costs O(1) amortised and nothing runs between hits. Its window maths
use a monotonic clock, so a wall-clock step can neither open nor stall a window.

When Redis cannot answer, rate limits fall back to this node's own counters
rather than fail: every exchange still meets a limit, only no longer one shared
with the other nodes, and each fallback is a WARNING log line
(``throttle.redis_unavailable``). The next exchange tries Redis again, so the
shared limit returns without a restart. Replay protection makes the opposite
choice and fails closed (:mod:`gateway.replay`), also when it shares the script.
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import structlog
from limits import RateLimitItem, parse
from limits.errors import ConfigurationError
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from gateway.errors import ConfigError, NodeError, Reason, ThrottledError
from gateway.identifiers import ClientId, ServiceId

log = structlog.get_logger("gateway.throttle")

#: How many keys a LocalWindow holds before its first sweep of idle keys.
SWEEP_AT = 4096

#: The prefix of every key the shared window writes.
KEY_PREFIX = "mediator-rate:"

#: One hit on a moving window kept in Redis, optionally after a first use.
#:
#: ``KEYS[1]`` is the window: the times (ms) of its admitted hits, newest first,
#: at most ``limit`` of them, expiring ``period`` ms after the newest. ``KEYS[2]``,
#: when given, is a replay key, created with a TTL of ``ARGV[3]`` seconds unless
#: it exists. ``ARGV[1]`` is the limit and ``ARGV[2]`` the period in ms.
#: Returns -1 if the replay key existed (nothing is counted), 0 if the hit was
#: admitted, else the ms until the oldest hit in the window leaves it. A time
#: exactly ``period`` old still counts, as in :class:`LocalWindow` (so the key
#: outlives its newest hit by one ms more). ``TIME`` before a write needs the
#: effects replication of Redis 5 and later.
WINDOW_SCRIPT = """
if #KEYS > 1 then
  if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[3]) then
    return -1
  end
end
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
if limit < 1 then
  return period
end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local nth = redis.call('LINDEX', KEYS[1], limit - 1)
if nth and tonumber(nth) >= now - period then
  return math.max(1, tonumber(nth) + period - now)
end
redis.call('LPUSH', KEYS[1], now)
redis.call('LTRIM', KEYS[1], 0, limit - 1)
redis.call('PEXPIRE', KEYS[1], period + 1)
return 0
"""


def parse_rate(text: str) -> RateLimitItem:
    """A rate in the ``limits`` notation (``50/second``); raise ConfigError."""
    try:
        return parse(text)
    except (ValueError, ConfigurationError) as exc:
        raise ConfigError("rate", f"{text!r} is not a rate such as 50/second") from exc


@dataclass(slots=True)
class _Hits:
    """The times of one key's admitted hits, oldest first, and its window length."""

    period: float
    times: deque[float]


def _until_free(oldest: float, period: float, now: float) -> float:
    """Seconds until a hit at ``oldest`` leaves the window: in ``(0, period]``.

    Clamped: ``oldest + period - now`` can round to just over ``period`` when
    ``oldest`` is ``now``, which would add a second to ``Retry-After``.
    """
    return min(period, oldest + period - now)


class LocalWindow:
    """An exact moving window per key, kept in this process.

    Each key holds the times of its hits admitted within the last ``period``
    seconds, at most ``limit`` of them. A hit first drops the times that have left
    the window, then is admitted if fewer than ``limit`` remain. A time exactly
    ``period`` old still counts, as in the shared window's :data:`WINDOW_SCRIPT`,
    so both paths free a slot at the same instant.

    Keys whose hits have all left the window are dropped in a sweep that runs
    when the number of keys reaches a threshold; the threshold then becomes
    twice the keys that remain. A sweep therefore visits at most twice as many
    keys as were added since the last one (O(1) amortised per hit), and the keys
    held stay within twice the busiest set of active keys, or ``sweep_at``.
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, sweep_at: int = SWEEP_AT
    ) -> None:
        self._clock = clock
        self._min_sweep = sweep_at
        self._sweep_at = sweep_at
        self._keys: dict[Hashable, _Hits] = {}

    def __len__(self) -> int:
        """The number of keys held, idle ones not yet swept included."""
        return len(self._keys)

    def hit(self, key: Hashable, limit: int, period: float) -> float | None:
        """Count one hit on ``key``: None if admitted, else the seconds to wait.

        The wait is the time until the oldest hit in the window leaves it, the
        moment a hit can be admitted again. Raises nothing.
        """
        now = self._clock()
        if limit < 1:
            return period
        hits = self._keys.get(key)
        if hits is None:
            hits = self._add(key, limit, period, now)

        times = _in_window(hits, now - period)
        if len(times) < limit:
            times.append(now)
            return None
        return _until_free(times[0], period, now)

    def wait(self, key: Hashable, limit: int, period: float) -> float | None:
        """What :meth:`hit` would answer now, without counting a hit. Raises nothing."""
        now = self._clock()
        if limit < 1:
            return period
        hits = self._keys.get(key)
        if hits is None:
            return None
        times = _in_window(hits, now - period)
        return None if len(times) < limit else _until_free(times[0], period, now)

    def _add(self, key: Hashable, limit: int, period: float, now: float) -> _Hits:
        if len(self._keys) >= self._sweep_at:
            self._sweep(now)
        hits = self._keys[key] = _Hits(period, deque(maxlen=limit))
        return hits

    def _sweep(self, now: float) -> None:
        """Drop the keys whose newest hit has left the window."""
        # A new dict, not deletions in place: a dict never shrinks its table.
        self._keys = {
            key: hits
            for key, hits in self._keys.items()
            if hits.times and hits.times[-1] >= now - hits.period
        }
        self._sweep_at = max(self._min_sweep, 2 * len(self._keys))


async def _shared_hit(
    script: AsyncScript,
    item: RateLimitItem,
    client: ClientId,
    service: ServiceId,
    first_use: tuple[str, int] | tuple[()],
) -> int:
    """The script's answer: -1 used before, 0 admitted, else ms to wait."""
    period_ms = item.get_expiry() * 1000
    key = f"{KEY_PREFIX}{client}|{service}|{item.amount}|{period_ms}"
    keys = [key] if not first_use else [key, first_use[0]]
    args = [item.amount, period_ms] + ([first_use[1]] if first_use else [])
    return int(await script(keys=keys, args=args))


def _raise_over(wait: float | None) -> None:
    """Raise ThrottledError for a refused hit (``wait`` seconds); None passes."""
    if wait is None:
        return
    retry = max(1, math.ceil(wait))
    raise ThrottledError(Reason.RATE_LIMITED, headers={"Retry-After": str(retry)})


def _in_window(hits: _Hits, cutoff: float) -> deque[float]:
    """The key's hit times, those older than ``cutoff`` dropped first."""
    times = hits.times
    while times and times[0] < cutoff:
        times.popleft()
    return times


class Throttle:
    """Rate limits per (client, service) and a cap on exchanges in flight per client.

    The shared window lives in ``redis`` (a client the caller owns and closes),
    or in a client of ``redis_url`` that the throttle owns; with neither, in this
    node only. ``clock`` is the monotonic clock of this node's own window (tests
    fake it); the shared window keeps Redis's clock.
    """

    def __init__(
        self,
        default_rate: str,
        max_concurrent: int,
        redis_url: str | None = None,
        *,
        redis: Redis | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._default = parse_rate(default_rate)
        self._rates: dict[str, RateLimitItem] = {}
        self._max_concurrent = max_concurrent
        self._in_flight: Counter[ClientId] = Counter()
        self._owned = redis is None and redis_url is not None
        if self._owned and redis_url is not None:
            redis = Redis.from_url(redis_url)
        #: The client of the shared window, None without Redis.
        self.redis = redis
        self._script = None if redis is None else redis.register_script(WINDOW_SCRIPT)
        self._local = LocalWindow(clock)

    async def hit(self, client: ClientId, service: ServiceId, rate: str | None) -> None:
        """Count one exchange; raise ThrottledError over the limit.

        A Redis failure never fails the exchange: it is counted on this node's
        own window instead, with a WARNING line (see the module docstring).
        """
        item = self._item(rate)
        script = self._script
        if script is None:
            _raise_over(self._local_wait(item, client, service))
            return
        try:
            wait_ms = await _shared_hit(script, item, client, service, ())
        except (RedisError, OSError) as exc:
            log.warning(
                "throttle.redis_unavailable",
                detail="rate limits are counted per node until Redis answers",
                error=type(exc).__name__,
            )
            _raise_over(self._local_wait(item, client, service))
            return
        _raise_over(wait_ms / 1000 if wait_ms else None)

    async def first_use_and_hit(
        self,
        replay_key: str,
        ttl_s: int,
        client: ClientId,
        service: ServiceId,
        rate: str | None,
    ) -> bool:
        """Create ``replay_key`` (TTL ``ttl_s``) and count one exchange, atomically.

        False, with nothing counted, if the key existed: the token was used
        before. ``replay_key`` must live in this throttle's Redis.

        :raises ThrottledError: over the limit (the token is then used).
        :raises NodeError: ``replay_store_unavailable`` if Redis does not answer:
            replay protection fails closed, so nothing falls back here.
        """
        script = self._script
        if script is None:
            raise RuntimeError("first_use_and_hit needs the shared window")
        item = self._item(rate)
        try:
            wait_ms = await _shared_hit(
                script, item, client, service, (replay_key, max(1, ttl_s))
            )
        except (RedisError, OSError) as exc:
            raise NodeError(
                Reason.REPLAY_STORE_UNAVAILABLE, log_reason="replay_store_error"
            ) from exc
        if wait_ms < 0:
            return False
        _raise_over(wait_ms / 1000 if wait_ms else None)
        return True

    async def preload(self) -> None:
        """Load the shared window's script into Redis now, so that the first
        exchange costs one round trip too. Raises nothing: a Redis that does not
        answer is met by the first hit, and one restarted later without the
        script gets it again from that hit."""
        if self.redis is None:
            return
        try:
            await self.redis.script_load(WINDOW_SCRIPT)
        except (RedisError, OSError) as exc:
            log.debug("throttle.preload_failed", error=type(exc).__name__)

    async def aclose(self) -> None:
        """Close the Redis client if the throttle made it. Raises nothing."""
        if self._owned and self.redis is not None:
            await self.redis.aclose()

    def _local_wait(
        self, item: RateLimitItem, client: ClientId, service: ServiceId
    ) -> float | None:
        """Count the hit in this node's window: None if admitted, else the wait."""
        period = item.get_expiry()
        # The rate is part of the key, as it is of the shared window's keys.
        key = (client, service, item.amount, period)
        return self._local.hit(key, item.amount, period)

    @asynccontextmanager
    async def in_flight(self, client: ClientId) -> AsyncIterator[None]:
        """Hold one of the client's concurrent slots for the body of the block."""
        if self._in_flight[client] >= self._max_concurrent:
            raise ThrottledError(
                Reason.TOO_MANY_CONCURRENT, headers={"Retry-After": "1"}
            )
        self._in_flight[client] += 1
        try:
            yield
        finally:
            self._in_flight[client] -= 1
            if not self._in_flight[client]:
                del self._in_flight[client]

    def _item(self, rate: str | None) -> RateLimitItem:
        if rate is None:
            return self._default
        item = self._rates.get(rate)
        if item is None:
            item = self._rates[rate] = parse_rate(rate)
        return item
