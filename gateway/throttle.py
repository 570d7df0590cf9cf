"""Step 5 of an exchange: rate limits and concurrency per client and service.

Limits are keyed by the authenticated client and the service, never by a header
value, so spelling a credential differently or claiming another address cannot buy
a fresh bucket. With Redis the counters are shared by every node (a sliding window
counter, updated atomically by the ``limits`` library's scripts); without it each
node keeps its own and says so at start.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import ConfigurationError, StorageError

from gateway.errors import ConfigError, NodeError, Reason, ThrottledError
from gateway.identifiers import ClientId, ServiceId


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
        storage: Storage
        if redis_url is None:
            storage = MemoryStorage()
        else:
            storage = RedisStorage(
                redis_url.replace("redis://", "async+redis://", 1),
                implementation="redispy",
                wrap_exceptions=True,
                key_prefix="mediator-rate",
            )
        self._limiter = SlidingWindowCounterRateLimiter(storage)

    async def hit(self, client: ClientId, service: ServiceId, rate: str | None) -> None:
        """Count one exchange; raise ThrottledError over the limit, NodeError."""
        item = self._item(rate)
        key = (str(client), str(service))
        try:
            allowed = await self._limiter.hit(item, *key)
            if allowed:
                return
            stats = await self._limiter.get_window_stats(item, *key)
        except StorageError as exc:
            raise NodeError(Reason.RATE_LIMIT_STORE_UNAVAILABLE) from exc
        retry = max(1, math.ceil(stats.reset_time - time.time()))
        raise ThrottledError(Reason.RATE_LIMITED, headers={"Retry-After": str(retry)})

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
