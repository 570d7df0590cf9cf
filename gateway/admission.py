"""The replay check of step 2 and the rate limit of step 5, in one round trip.

An exchange verifies its client's assertion in step 2 but records the token's use
here, with the hit on the client's rate limit. When the replay cache and the rate
limits share one Redis, one script does both
(:meth:`~gateway.throttle.Throttle.first_use_and_hit`): an exchange costs one
Redis round trip, not two, and a replayed token is refused before it is counted.

The order of refusals is the one of the steps: a replayed token is refused as
replayed whatever else is wrong with its request. A request refused after its
assertion was verified, in step 2 (``X-Road-Client`` names another client) or in
steps 3 and 4, records the use first (:meth:`Admission.record_use`), so every verified
assertion is used once, whatever became of its request: a token captured from a
refused request cannot be used for another one.
"""

from __future__ import annotations

from gateway.auth import TokenUse, replayed, spend
from gateway.identifiers import ClientId, ServiceId
from gateway.replay import RedisReplayCache, ReplayCache
from gateway.throttle import Throttle


class Admission:
    """Records each token's use and counts each exchange against its limits."""

    def __init__(self, replay: ReplayCache, throttle: Throttle) -> None:
        self._replay = replay
        #: The rate limits, and the cap on exchanges in flight per client.
        self.throttle = throttle
        #: The replay cache when its keys live in the throttle's own Redis.
        self._together: RedisReplayCache | None = None
        if (
            isinstance(replay, RedisReplayCache)
            and throttle.redis is not None
            and replay.client is throttle.redis
        ):
            self._together = replay

    @property
    def combined(self) -> bool:
        """Whether a use and its hit take one Redis round trip."""
        return self._together is not None

    async def record_use(self, use: TokenUse) -> None:
        """Record the use alone, for a request refused before step 5.

        :raises AuthenticationError: ``token_replayed`` if it was used before.
        :raises NodeError: ``replay_store_unavailable`` from the replay cache.
        """
        await spend(self._replay, use)

    async def admit(
        self, use: TokenUse, client: ClientId, service: ServiceId, rate: str | None
    ) -> None:
        """Record the use, then count the exchange (step 5).

        :raises AuthenticationError: ``token_replayed`` (nothing is counted).
        :raises ThrottledError: over the rate limit; the token is used.
        :raises NodeError: ``replay_store_unavailable`` if the replay store does
            not answer (the rate limit alone would fall back per node), or may
            evict keys (its check, :meth:`RedisReplayCache.ready`, runs first:
            nothing is recorded or counted then).
        """
        together = self._together
        if together is None:
            await self.record_use(use)
            await self.throttle.hit(client, service, rate)
            return
        await together.ready()
        key = together.key(use.namespace, use.token_id)
        if not await self.throttle.first_use_and_hit(
            key, use.ttl_s, client, service, rate
        ):
            raise replayed()

    async def aclose(self) -> None:
        """Close what the throttle owns. Raises nothing."""
        await self.throttle.aclose()
