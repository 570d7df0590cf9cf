"""Replay protection: a token id or signature nonce is accepted once.

A replay cache answers one question atomically: is this the first use of
``token_id`` in ``namespace`` (an issuer, or a signing key) within ``ttl_s``
seconds? Token ids are stored only as SHA-256 digests.

Both stores fail closed. The in-process cache refuses new entries when it is full
of live ones rather than forget one that could then be replayed; the Redis store
turns every Redis failure into ``replay_store_unavailable``. Replay keys must live
where Redis cannot evict them (a database or instance with ``noeviction``).
"""

from __future__ import annotations

import hashlib
import heapq
import math
import time
from collections.abc import Callable
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.errors import NodeError, Reason


class ReplayCache(Protocol):
    """A store that accepts each (namespace, token id) pair once."""

    async def first_use(self, namespace: str, token_id: str, ttl_s: int) -> bool:
        """True the first time the pair is seen within ``ttl_s``, False after.

        :raises NodeError: ``replay_store_unavailable`` if the store cannot answer.
        """
        ...


def token_digest(token_id: str) -> str:
    """The hex SHA-256 of a token id: what stores and logs keep instead of it."""
    return hashlib.sha256(token_id.encode("utf-8")).hexdigest()


def _ttl(ttl_s: int) -> int:
    return max(1, math.ceil(ttl_s))


class MemoryReplayCache:
    """A bounded in-process replay cache for a single node without Redis.

    Entries expire after their TTL. When the cache holds ``max_entries`` live
    entries, a new one is refused with ``replay_store_unavailable``.
    """

    def __init__(
        self,
        max_entries: int = 100_000,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max = max_entries
        self._clock = clock
        self._expiry: dict[tuple[str, str], float] = {}
        self._heap: list[tuple[float, tuple[str, str]]] = []

    def __len__(self) -> int:
        return len(self._expiry)

    def __bool__(self) -> bool:
        # An empty cache is still a cache: ``cache or default`` must keep it.
        return True

    async def first_use(self, namespace: str, token_id: str, ttl_s: int) -> bool:
        """True once per (namespace, token id) within ``ttl_s``.

        :raises NodeError: ``replay_store_unavailable`` when full of live entries.
        """
        now = self._clock()
        key = (namespace, token_digest(token_id))

        expires = self._expiry.get(key)
        if expires is not None and expires > now:
            return False

        self._evict_expired(now)
        if len(self._expiry) >= self._max:
            raise NodeError(
                Reason.REPLAY_STORE_UNAVAILABLE, log_reason="replay_cache_full"
            )

        deadline = now + _ttl(ttl_s)
        self._expiry[key] = deadline
        heapq.heappush(self._heap, (deadline, key))
        return True

    def _evict_expired(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            deadline, key = heapq.heappop(self._heap)
            if self._expiry.get(key) == deadline:
                del self._expiry[key]


class RedisReplayCache:
    """Replay cache in Redis: one ``SET key 1 NX EX ttl`` per use, atomic across nodes.

    The key is ``prefix + namespace + ":" + sha256(token_id)``.
    """

    def __init__(self, client: Redis, prefix: str = "replay:") -> None:
        self._client = client
        self._prefix = prefix

    def key(self, namespace: str, token_id: str) -> str:
        """The Redis key for one (namespace, token id) pair."""
        return f"{self._prefix}{namespace}:{token_digest(token_id)}"

    async def first_use(self, namespace: str, token_id: str, ttl_s: int) -> bool:
        """True once per (namespace, token id) within ``ttl_s``.

        :raises NodeError: ``replay_store_unavailable`` on any Redis failure.
        """
        try:
            created = await self._client.set(
                self.key(namespace, token_id), b"1", nx=True, ex=_ttl(ttl_s)
            )
        except (RedisError, OSError) as exc:
            raise NodeError(
                Reason.REPLAY_STORE_UNAVAILABLE, log_reason="replay_store_error"
            ) from exc
        return bool(created)
