"""Whether a Redis can still be trusted with replay keys (C33 B).

Replay keys must live where Redis cannot evict them (C33 B): the node refuses to
start on a Redis whose ``maxmemory-policy`` is not ``noeviction``, unless
``redis.replay_url`` names one that is (:func:`check_replay_store`).

A Redis can change its policy while the node runs, so the Redis store checks again
while it serves (:class:`EvictionWatch`): before a use, once the last check is
``redis.replay_check_interval_s`` seconds old (5 by default), and on each health
probe that finds it as old. The check is one round trip, ``INFO memory``,
``INFO stats`` and ``INFO server`` pipelined: the policy, the server's count of
evicted keys (of any database: any evicted key may have been a replay key) and its
run id. The count shows evictions also when the policy was switched to an evicting
one and back between two checks; a new run id shows a restart, which may have lost
every key. A store found evicting, or that has evicted keys or restarted, fails
closed (``replay_store_evicts``) until a check finds it safe again; after
evictions or a restart that is only once every key then lost would have expired
anyway.

The check needs ``INFO``, not ``CONFIG``, so a managed Redis that renames or
disables ``CONFIG`` is checked the same way. A Redis that refuses ``INFO`` (an ACL,
a renamed command) cannot be checked; as at start, where the node then starts but
cannot use the store, every use is refused (``replay_check_refused``) until a
later check passes.

What no check can prevent: a key evicted after one check is noticed at the next
one at the earliest (a use or a health probe runs it), and until then the token whose
key it was is accepted again. The interval bounds how long a store that started
evicting is trusted, not whether a token can slip through meanwhile; the only
safe store is one with ``noeviction`` all along. The count is first read when
the node starts (:meth:`EvictionWatch.check`): evictions before that are
not seen.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from gateway.errors import ConfigError, NodeError, Reason
from gateway.settings import RedisSettings

log = structlog.get_logger("gateway.replay")


#: Seconds between two eviction checks of a Redis replay store, by default.
CHECK_INTERVAL_S = 5.0

#: The longest TTL a replay key gets under any valid settings: a token's lifetime
#: (``auth.max_token_lifetime_s``, at most 3600) and two leeways (300 each).
LONGEST_TTL_S = 3600 + 2 * 300

#: Why a Redis replay store refuses uses (``log_reason``).
_EVICTS = "replay_store_evicts"
_ERROR = "replay_store_error"
_REFUSED = "replay_check_refused"


class EvictionWatch:
    """The checks of one Redis replay store: whether uses may be recorded now.

    A check runs when the last one is ``check_interval_s`` old (see the module
    docstring); concurrent callers that find one due wait for one check.
    ``checked`` says the start check found the store safe; without it every
    call checks first until a check reaches Redis.

    Evictions are counted from the first check (:meth:`check` runs one at once).
    Once Redis has evicted keys or restarted, uses are refused for ``hold_s``
    seconds after the check that saw it: the longest TTL a replay key can have,
    so that every key lost before that check has expired by then. ``clock`` is
    monotonic (tests fake it).
    """

    def __init__(
        self,
        client: Redis,
        *,
        checked: bool = True,
        check_interval_s: float = CHECK_INTERVAL_S,
        hold_s: float = LONGEST_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if check_interval_s <= 0:
            raise ValueError("check_interval_s must be positive")
        self._client = client
        self._interval = check_interval_s
        self._hold_s = hold_s
        self._clock = clock
        #: The ``log_reason`` uses are refused with, None while the store is safe.
        #: ``_ERROR`` means not known: a check could not reach Redis, or none ran.
        self._refusal: str | None = None if checked else _ERROR
        #: When the last check that got an answer from Redis ended.
        self._checked_at = clock() if checked else -math.inf
        #: Redis's ``evicted_keys`` and ``run_id`` at the last check that read them.
        self._evicted: int | None = None
        self._run_id: str | None = None
        #: Uses are refused until then: keys were evicted that may still be live.
        self._held_until = -math.inf
        self._checking = asyncio.Lock()
        #: Checks that ended, so that uses waiting for one do not run another.
        self._checks = 0

    async def ready(self) -> None:
        """Pass if the store is safe to record a use in, checking first if due.

        :raises NodeError: ``replay_store_unavailable``: with ``replay_store_evicts``
            while Redis may evict keys or has lost some that may be live,
            ``replay_check_refused`` while Redis refuses the check, and
            ``replay_store_error`` while the check cannot reach it.
        """
        if self._due():
            await self._check_once()
        refusal = self._refusal
        if refusal is not None:
            raise NodeError(Reason.REPLAY_STORE_UNAVAILABLE, log_reason=refusal)

    async def healthy(self) -> bool:
        """Whether uses are accepted now, checking first if due. Raises nothing."""
        if self._due():
            await self._check_once()
        return self._refusal is None

    async def check(self) -> bool:
        """Check the store now, due or not, and say whether uses are accepted.
        Raises nothing."""
        await self._check_once()
        return self._refusal is None

    def _due(self) -> bool:
        if self._refusal == _ERROR:
            return True
        return self._clock() - self._checked_at >= self._interval

    async def _check_once(self) -> None:
        """Run one check, or wait for the one running and take its answer."""
        ended = self._checks
        async with self._checking:
            if self._checks != ended:
                return
            await self._check()
            self._checks += 1

    async def _check(self) -> None:
        try:
            reading = await _check_policy(self._client, "redis")
            evicting = None
        except ConfigError as exc:
            reading = exc.reading if isinstance(exc, _EvictingPolicyError) else _NONE
            evicting = exc.reason
        except ResponseError as exc:
            # INFO renamed, disabled or denied to this user: nothing to go by.
            self._settle(
                _REFUSED,
                detail="Redis refused INFO; replay uses are refused until it answers",
                error=type(exc).__name__,
            )
            return
        except (RedisError, OSError):
            # Not an answer: the next use checks again (its SET would fail too).
            self._refusal = _ERROR
            return
        now = self._clock()
        fresh = self._count_evictions(reading.evicted)
        restarted = self._restarted(reading.run_id)
        if fresh or restarted:
            self._held_until = now + self._hold_s
        if restarted:
            self._settle(
                _EVICTS,
                force=True,
                detail="Redis restarted; replay keys it held may be lost",
                refused_for_s=self._hold_s,
            )
            return
        if evicting is not None:
            self._settle(
                _EVICTS, force=bool(fresh), detail=evicting, evicted_keys=fresh
            )
        elif fresh:
            self._settle(
                _EVICTS,
                force=True,
                detail="Redis evicted keys; replay keys among them may be live",
                evicted_keys=fresh,
                refused_for_s=self._hold_s,
            )
        elif now < self._held_until:
            self._settle(
                _EVICTS, detail="keys were evicted", until_s=self._held_until - now
            )
        else:
            self._settle(None)

    def _restarted(self, run_id: str | None) -> bool:
        """Whether Redis restarted since the last check: a new run id.

        A restart may lose every key (without persistence, or since the last
        snapshot), and the eviction count starts again at 0, so it shows nothing.
        """
        if run_id is None:
            return False
        before, self._run_id = self._run_id, run_id
        return before is not None and before != run_id

    def _count_evictions(self, evicted: int | None) -> int:
        """Keys evicted since the last reading of the count (0 at the first)."""
        if evicted is None:
            return 0
        before, self._evicted = self._evicted, evicted
        if before is None:
            return 0
        # A count below the last one was reset (CONFIG RESETSTAT, a restart): all
        # it holds now was evicted since.
        return evicted - before if evicted >= before else evicted

    def _settle(
        self, refusal: str | None, *, force: bool = False, **detail: object
    ) -> None:
        """Record a check's answer; log when it changes what uses get."""
        before, self._refusal = self._refusal, refusal
        self._checked_at = self._clock()
        if refusal == before and not force:
            return
        if refusal is None:
            log.info("replay.store_safe", detail="replay uses are accepted again")
        elif refusal == _EVICTS:
            log.warning("replay.store_evicts", **detail)
        else:
            log.warning("replay.check_refused", **detail)


def _replay_source(settings: RedisSettings) -> tuple[str, str]:
    if settings.replay_url is not None:
        return settings.replay_url, "node.yaml redis.replay_url"
    if settings.url is None:
        raise ValueError("no Redis is configured")
    return settings.url, "node.yaml redis.url"


class _Reading:
    """What one check read: the count of evicted keys and the server's run id."""

    __slots__ = ("evicted", "run_id")

    def __init__(self, evicted: int | None, run_id: str | None) -> None:
        self.evicted, self.run_id = evicted, run_id


#: A check that read neither count nor run id.
_NONE = _Reading(None, None)


class _EvictingPolicyError(ConfigError):
    """A ``maxmemory-policy`` that may evict keys, and what the check read."""

    def __init__(self, source: str, reason: str, reading: _Reading) -> None:
        super().__init__(source, reason)
        self.reading = reading


async def _check_policy(client: Redis, source: str) -> _Reading:
    """Redis's count of evicted keys and run id (None where INFO lacks them), in
    one round trip.

    :raises ConfigError: the ``maxmemory-policy`` is not ``noeviction`` (with
        what was read as ``reading``).
    :raises RedisError: Redis did not answer, or refused ``INFO``.
    """
    pipe = client.pipeline(transaction=False)
    pipe.info("memory")
    pipe.info("stats")
    pipe.info("server")
    memory, stats, server = await pipe.execute()
    policy = str(memory.get("maxmemory_policy", ""))
    evicted = stats.get("evicted_keys")
    run_id = server.get("run_id")
    reading = _Reading(
        evicted if isinstance(evicted, int) else None,
        str(run_id) if run_id is not None else None,
    )
    if policy != "noeviction":
        raise _EvictingPolicyError(
            source,
            f"maxmemory-policy is {policy or 'unknown'!r}: replay keys could be "
            "evicted and tokens replayed; set it to noeviction, or configure "
            "redis.replay_url with a Redis that has noeviction",
            reading,
        )
    return reading


async def check_replay_store(settings: RedisSettings) -> bool:
    """Refuse a Redis that may evict replay keys (C33 B), before the node starts.

    True when the replay Redis has ``maxmemory-policy noeviction`` (or no Redis is
    configured); False when it does not answer now, or refuses ``INFO``, so that
    the cache checks on its first use (a WARNING says so; until a check passes
    every use fails closed anyway).

    :raises ConfigError: the replay Redis may evict keys.
    """
    if settings.url is None:
        return True
    url, source = _replay_source(settings)
    client = Redis.from_url(url)
    try:
        await _check_policy(client, source)
    except (RedisError, OSError) as exc:
        answer = "refused INFO" if isinstance(exc, ResponseError) else "did not answer"
        log.warning(
            "replay.eviction_unchecked",
            detail=f"Redis {answer}; its eviction policy is checked on use",
            error=type(exc).__name__,
        )
        return False
    finally:
        await client.aclose()
    return True
