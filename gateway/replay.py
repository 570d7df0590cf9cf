"""Replay protection: a token id or signature nonce is accepted once.

A replay cache answers one question atomically: is this the first use of
``token_id`` in ``namespace`` (an issuer, or a signing key) within ``ttl_s``
seconds? Token ids are stored only as SHA-256 digests.

Both stores fail closed. The in-process cache refuses new entries when it is full
of live ones rather than forget one that could then be replayed; the Redis store
turns every Redis failure into ``replay_store_unavailable``. Replay keys must live
where Redis cannot evict them (C33 B): a Redis store asks its
:class:`~gateway.replaywatch.EvictionWatch` before each use, and refuses uses while
Redis may have lost keys.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.errors import NodeError, Reason
from gateway.replaywatch import (
    CHECK_INTERVAL_S,
    LONGEST_TTL_S,
    EvictionWatch,
)
from gateway.settings import RedisSettings


class ReplayCache(Protocol):
    """A store that accepts each (namespace, token id) pair once."""

    async def first_use(self, namespace: str, token_id: str, ttl_s: int) -> bool:
        """True the first time the pair is seen within ``ttl_s``, False after.

        :raises NodeError: ``replay_store_unavailable`` if the store cannot answer.
        """
        ...

    async def aclose(self) -> None:
        """Close what the store owns. Raises nothing."""
        ...


def token_digest(token_id: str) -> str:
    """The hex SHA-256 of a token id: what stores and logs keep instead of it."""
    return hashlib.sha256(token_id.encode("utf-8")).hexdigest()


def _ttl(ttl_s: int) -> int:
    return max(1, math.ceil(ttl_s))


#: Width of the in-process cache's time slots, in seconds.
_SLOT_S = 8


class MemoryReplayCache:
    """A bounded in-process replay cache for a single node without Redis.

    Entries expire after their TTL. When the cache holds ``max_entries`` live
    entries, a new one is refused with ``replay_store_unavailable``.

    A node answering a few hundred exchanges a second holds every assertion of
    the last few minutes, so entries are kept small: a 16-byte digest of the
    namespace and token id and its deadline in whole seconds. They live in one
    table per 8-second slot of deadlines, and a slot is dropped whole once its
    last second has passed. A lookup visits each live slot (lifetime / 8 of
    them), but the memory follows the current rate: one table for everything
    would keep, for the life of the process, the size it doubled to at the
    busiest moment.
    """

    def __init__(
        self,
        max_entries: int = 1_000_000,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max = max_entries
        self._clock = clock
        #: Deadlines by key, in tables by slot: slot ``n`` holds deadlines in
        #: ``((n - 1) * 8, n * 8]``, and a key is in at most one table.
        self._slots: dict[int, dict[bytes, int]] = {}
        self._size = 0
        #: The end of the earliest slot: nothing can expire whole before it.
        self._next_end: float = math.inf

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        # An empty cache is still a cache: ``cache or default`` must keep it.
        return True

    async def aclose(self) -> None:
        """Nothing to close. Raises nothing."""

    async def first_use(self, namespace: str, token_id: str, ttl_s: int) -> bool:
        """True once per (namespace, token id) within ``ttl_s``.

        :raises NodeError: ``replay_store_unavailable`` when full of live entries.
        """
        now = self._clock()
        if now >= self._next_end:
            self._drop_ended_slots(now)
        key = _memory_key(namespace, token_id)

        for held in self._slots.values():
            deadline = held.get(key)
            if deadline is not None:
                if deadline > now:
                    return False
                # Used again after it expired: it moves to its new slot.
                del held[key]
                self._size -= 1
                break

        if self._size >= self._max:
            self._drop_expired(now)
            if self._size >= self._max:
                raise NodeError(
                    Reason.REPLAY_STORE_UNAVAILABLE, log_reason="replay_cache_full"
                )

        # Rounded up: an entry never expires before its TTL has passed.
        deadline = math.ceil(now + _ttl(ttl_s))
        slot = -(-deadline // _SLOT_S)
        table = self._slots.get(slot)
        if table is None:
            table = self._slots[slot] = {}
            self._next_end = min(self._next_end, slot * _SLOT_S)
        table[key] = deadline
        self._size += 1
        return True

    def _drop_ended_slots(self, now: float) -> None:
        for slot in [slot for slot in self._slots if slot * _SLOT_S <= now]:
            self._size -= len(self._slots.pop(slot))
        self._next_end = min(self._slots, default=math.inf) * _SLOT_S

    def _drop_expired(self, now: float) -> None:
        # Only when full: the slot now falls in may hold some expired entries.
        for table in self._slots.values():
            for key in [key for key, deadline in table.items() if deadline <= now]:
                del table[key]
                self._size -= 1


def _memory_key(namespace: str, token_id: str) -> bytes:
    """A 16-byte digest of the pair; the namespace's length keeps pairs apart."""
    material = f"{len(namespace)}:{namespace}:{token_id}".encode()
    return hashlib.sha256(material).digest()[:16]


class RedisReplayCache:
    """Replay cache in Redis: one ``SET key 1 NX EX ttl`` per use, atomic across nodes.

    The key is ``prefix + namespace + ":" + sha256(token_id)``. With ``owned`` the
    cache closes its client in :meth:`aclose`.

    Before a use it asks its :class:`~gateway.replaywatch.EvictionWatch` whether
    Redis may have lost keys, checking again when a check is due; between checks
    a use costs nothing more than its ``SET``. ``checked``, ``check_interval_s``,
    ``hold_s`` and ``clock`` are the watch's.
    """

    def __init__(
        self,
        client: Redis,
        prefix: str = "replay:",
        *,
        owned: bool = False,
        checked: bool = True,
        check_interval_s: float = CHECK_INTERVAL_S,
        hold_s: float = LONGEST_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._owned = owned
        self._watch = EvictionWatch(
            client,
            checked=checked,
            check_interval_s=check_interval_s,
            hold_s=hold_s,
            clock=clock,
        )

    async def aclose(self) -> None:
        """Close the client if this cache owns it. Raises nothing."""
        if self._owned:
            await self._client.aclose()

    @property
    def client(self) -> Redis:
        """The Redis client the keys are written with."""
        return self._client

    def key(self, namespace: str, token_id: str) -> str:
        """The Redis key for one (namespace, token id) pair."""
        return f"{self._prefix}{namespace}:{token_digest(token_id)}"

    async def ready(self) -> None:
        """Pass if the store is safe to record a use in, checking first if due.

        :raises NodeError: ``replay_store_unavailable`` while Redis may have lost
            keys or cannot be checked (:meth:`EvictionWatch.ready`).
        """
        await self._watch.ready()

    async def healthy(self) -> bool:
        """Whether uses are accepted now, checking first if due. Raises nothing."""
        return await self._watch.healthy()

    async def check(self) -> bool:
        """Check the store now, due or not, and say whether uses are accepted.

        A node runs it once at start, so that evictions from then on are
        counted. Raises nothing.
        """
        return await self._watch.check()

    async def first_use(self, namespace: str, token_id: str, ttl_s: int) -> bool:
        """True once per (namespace, token id) within ``ttl_s``.

        :raises NodeError: ``replay_store_unavailable`` on any Redis failure, and
            while the store may evict keys (:meth:`ready`).
        """
        await self.ready()
        try:
            created = await self._client.set(
                self.key(namespace, token_id), b"1", nx=True, ex=_ttl(ttl_s)
            )
        except (RedisError, OSError) as exc:
            raise NodeError(
                Reason.REPLAY_STORE_UNAVAILABLE, log_reason="replay_store_error"
            ) from exc
        return bool(created)


def open_replay_cache(
    settings: RedisSettings,
    shared: Redis,
    *,
    checked: bool,
    hold_s: float = LONGEST_TTL_S,
) -> RedisReplayCache:
    """The replay cache on ``redis.replay_url``'s own client if one is configured,
    else on ``shared`` (the ``redis.url`` client). It checks its store every
    ``redis.replay_check_interval_s``; ``hold_s`` is the longest TTL of a replay
    key (:class:`RedisReplayCache`). Raises nothing."""
    interval = settings.replay_check_interval_s
    if settings.replay_url is None or settings.replay_url == settings.url:
        return RedisReplayCache(
            shared, checked=checked, check_interval_s=interval, hold_s=hold_s
        )
    client = Redis.from_url(settings.replay_url)
    return RedisReplayCache(
        client, owned=True, checked=checked, check_interval_s=interval, hold_s=hold_s
    )
