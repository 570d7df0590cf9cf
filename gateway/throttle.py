"""Step 5 of an exchange: rate limits and concurrency per client and service.

Limits are keyed by the authenticated client and the service, never by a header
value, so spelling a credential differently or claiming another address cannot buy
a fresh bucket. The window is a moving window (a log of the admitted hits'
times), so a limit of N holds in *every* window of its length, also across a
minute boundary (C39 E); a sliding-window counter only approximates that and lets
up to 2N through when a burst ends one window and another starts the next. With
Redis the log is shared by every node (updated atomically by the ``limits``
library's Lua scripts, so no key ever lives without its expiry); without it each
node keeps its own and says so at start.

The in-process log is this module's own :class:`LocalWindow` rather than the
library's memory storage: that storage inserts every hit at the head of a list
and expires old hits in a task that makes a thread-pool round trip per key, which
cost over a hundred microseconds of CPU per exchange on a busy node. Here a hit
costs O(1) amortised and nothing runs between hits. Its window maths use a
monotonic clock, so a wall-clock step can neither open nor stall a window.

When Redis cannot answer, rate limits fall back to this node's own counters
rather than fail: every exchange still meets a limit, only no longer one shared
with the other nodes, and each fallback is a WARNING log line
(``throttle.redis_unavailable``). The next exchange tries Redis again, so the
shared limit returns without a restart. Replay protection makes the opposite
choice and fails closed (:mod:`gateway.replay`).
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
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import ConfigurationError, StorageError
from redis.asyncio import ConnectionPool

from gateway.errors import ConfigError, Reason, ThrottledError
from gateway.identifiers import ClientId, ServiceId

log = structlog.get_logger("gateway.throttle")

#: How many keys a LocalWindow holds before its first sweep of idle keys.
SWEEP_AT = 4096


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


class LocalWindow:
    """An exact moving window per key, kept in this process.

    Each key holds the times of its hits admitted within the last ``period``
    seconds, at most ``limit`` of them. A hit first drops the times that have left
    the window, then is admitted if fewer than ``limit`` remain. A time exactly
    ``period`` old still counts, as in the ``limits`` library's Redis script, so
    both paths free a slot at the same instant.

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
        return times[0] + period - now

    def wait(self, key: Hashable, limit: int, period: float) -> float | None:
        """What :meth:`hit` would answer now, without counting a hit. Raises nothing."""
        now = self._clock()
        if limit < 1:
            return period
        hits = self._keys.get(key)
        if hits is None:
            return None
        times = _in_window(hits, now - period)
        return None if len(times) < limit else times[0] + period - now

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


def _in_window(hits: _Hits, cutoff: float) -> deque[float]:
    """The key's hit times, those older than ``cutoff`` dropped first."""
    times = hits.times
    while times and times[0] < cutoff:
        times.popleft()
    return times


class Throttle:
    """Rate limits per (client, service) and a cap on exchanges in flight per client.

    ``clock`` is the monotonic clock of this node's own window (tests fake it);
    the shared window in Redis keeps the ``limits`` library's wall-clock times.
    """

    def __init__(
        self,
        default_rate: str,
        max_concurrent: int,
        redis_url: str | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._default = parse_rate(default_rate)
        self._rates: dict[str, RateLimitItem] = {}
        self._max_concurrent = max_concurrent
        self._in_flight: Counter[ClientId] = Counter()
        self.shared = redis_url is not None
        self._pool: ConnectionPool | None = None
        self._limiter: MovingWindowRateLimiter | None = None
        self._local = LocalWindow(clock)
        if redis_url is not None:
            # The node owns the pool, so that stop() can close its connections.
            self._pool = ConnectionPool.from_url(redis_url)
            storage = RedisStorage(
                redis_url.replace("redis://", "async+redis://", 1),
                implementation="redispy",
                wrap_exceptions=True,
                key_prefix="mediator-rate",
                # limits types its options narrower than redis-py accepts.
                connection_pool=self._pool,  # type: ignore[arg-type]
            )
            self._limiter = MovingWindowRateLimiter(storage)

    async def hit(self, client: ClientId, service: ServiceId, rate: str | None) -> None:
        """Count one exchange; raise ThrottledError over the limit.

        A Redis failure never fails the exchange: it is counted on this node's
        own window instead, with a WARNING line (see the module docstring).
        """
        item = self._item(rate)
        if self._limiter is None:
            wait = self._local_wait(item, client, service)
        else:
            wait = await self._shared_wait(self._limiter, item, client, service)
        if wait is None:
            return
        retry = max(1, math.ceil(wait))
        raise ThrottledError(Reason.RATE_LIMITED, headers={"Retry-After": str(retry)})

    async def aclose(self) -> None:
        """Close the Redis connections, if any. Raises nothing."""
        if self._pool is not None:
            await self._pool.aclose()

    def _local_wait(
        self, item: RateLimitItem, client: ClientId, service: ServiceId
    ) -> float | None:
        """Count the hit in this node's window: None if admitted, else the wait."""
        period = item.get_expiry()
        # The rate is part of the key, as in the library's keys for Redis.
        key = (client, service, item.amount, period)
        return self._local.hit(key, item.amount, period)

    async def _shared_wait(
        self,
        limiter: MovingWindowRateLimiter,
        item: RateLimitItem,
        client: ClientId,
        service: ServiceId,
    ) -> float | None:
        """Count the hit in Redis, or in this node's window when Redis fails."""
        key = (str(client), str(service))
        try:
            if await limiter.hit(item, *key):
                return None
            stats = await limiter.get_window_stats(item, *key)
        except StorageError as exc:
            log.warning(
                "throttle.redis_unavailable",
                detail="rate limits are counted per node until Redis answers",
                error=type(exc.storage_error).__name__,
            )
            return self._local_wait(item, client, service)
        # Redis keeps wall-clock times, so the wait is measured on the same clock.
        return stats.reset_time - time.time()

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
