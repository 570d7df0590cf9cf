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
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import ConfigurationError, StorageError
from limits.util import WindowStats
from redis.asyncio import ConnectionPool

from gateway.errors import ConfigError, Reason, ThrottledError
from gateway.identifiers import ClientId, ServiceId

log = structlog.get_logger("gateway.throttle")


def parse_rate(text: str) -> RateLimitItem:
    """A rate in the ``limits`` notation (``50/second``); raise ConfigError."""
    try:
        return parse(text)
    except (ValueError, ConfigurationError) as exc:
        raise ConfigError("rate", f"{text!r} is not a rate such as 50/second") from exc


class Throttle:
    """Rate limits per (client, service) and a cap on exchanges in flight per client."""

    def __init__(
        self, default_rate: str, max_concurrent: int, redis_url: str | None = None
    ) -> None:
        self._default = parse_rate(default_rate)
        self._rates: dict[str, RateLimitItem] = {}
        self._max_concurrent = max_concurrent
        self._in_flight: Counter[ClientId] = Counter()
        self.shared = redis_url is not None
        self._pool: ConnectionPool | None = None
        storage: Storage
        if redis_url is None:
            storage = MemoryStorage()
        else:
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
        self._fallback = MovingWindowRateLimiter(MemoryStorage())

    async def hit(self, client: ClientId, service: ServiceId, rate: str | None) -> None:
        """Count one exchange; raise ThrottledError over the limit.

        A Redis failure never fails the exchange: it is counted on this node's
        own limiter instead, with a WARNING line (see the module docstring).
        """
        item = self._item(rate)
        key = (str(client), str(service))
        try:
            allowed, stats = await self._count(self._limiter, item, key)
        except StorageError as exc:
            log.warning(
                "throttle.redis_unavailable",
                detail="rate limits are counted per node until Redis answers",
                error=type(exc.storage_error).__name__,
            )
            allowed, stats = await self._count(self._fallback, item, key)
        if allowed:
            return
        retry = max(1, math.ceil(stats.reset_time - time.time()))
        raise ThrottledError(Reason.RATE_LIMITED, headers={"Retry-After": str(retry)})

    async def aclose(self) -> None:
        """Close the Redis connections, if any. Raises nothing."""
        if self._pool is not None:
            await self._pool.aclose()

    @staticmethod
    async def _count(
        limiter: MovingWindowRateLimiter,
        item: RateLimitItem,
        key: tuple[str, str],
    ) -> tuple[bool, WindowStats]:
        if await limiter.hit(item, *key):
            return True, WindowStats(0, 0)
        return False, await limiter.get_window_stats(item, *key)

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
