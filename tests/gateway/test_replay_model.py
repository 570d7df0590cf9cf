"""The in-process replay cache against a plain model: no replay within its TTL,
full only of live entries, whatever the clock and TTL do."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import NodeError, Reason
from gateway.replay import MemoryReplayCache

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Model:
    """What the cache must answer: a table of deadlines, never swept early."""

    max_entries: int
    deadlines: dict[tuple[str, str], int] = field(default_factory=dict)

    def live(self, now: float) -> int:
        return sum(deadline > now for deadline in self.deadlines.values())

    def first_use(self, namespace: str, token: str, ttl: float, now: float) -> bool:
        """True or False as the cache must; raises NodeError when full of live."""
        deadline = self.deadlines.get((namespace, token))
        if deadline is not None and deadline > now:
            return False
        others_live = self.live(now) - (deadline is not None and deadline > now)
        if others_live >= self.max_entries:
            raise NodeError(Reason.REPLAY_STORE_UNAVAILABLE)
        self.deadlines[(namespace, token)] = math.ceil(now + max(1, math.ceil(ttl)))
        return True


#: Clock steps: none, fractions, whole seconds, slot widths and long idle gaps.
_STEPS = st.one_of(
    st.sampled_from([0.0, 0.5, 1.0, 7.0, 7.999, 8.0, 8.001, 16.0, 300.0, 10_000.0]),
    st.floats(min_value=0, max_value=50, allow_nan=False),
)
_TTLS = st.one_of(
    st.sampled_from([0, 1, 2, 7, 8, 9, 300, 360, 86_400]),
    st.floats(min_value=0, max_value=40, allow_nan=False),
)
_USE = st.tuples(
    _STEPS,
    st.sampled_from(["a", "b", "c", "d", "e"]),
    st.sampled_from(["n1", "n2"]),
    _TTLS,
)


@settings(max_examples=400, deadline=None)
@given(
    start=st.one_of(
        st.sampled_from([0.0, 7.5, 8.0, 1000.0]),
        st.floats(min_value=0, max_value=1e6, allow_nan=False),
    ),
    max_entries=st.integers(min_value=1, max_value=4),
    uses=st.lists(_USE, max_size=80),
)
def test_memory_cache_answers_like_the_model_with_a_forward_clock(
    start: float, max_entries: int, uses: list[tuple[float, str, str, float]]
) -> None:
    """Every answer, every refusal for fullness, and len() within live..held."""
    clock = Clock(start)
    cache = MemoryReplayCache(max_entries, clock=clock)
    model = Model(max_entries)

    async def run() -> None:
        for step, token, namespace, ttl in uses:
            clock.now += step
            try:
                expected: bool | str = model.first_use(namespace, token, ttl, clock.now)
            except NodeError:
                expected = "replay_cache_full"
            try:
                got: bool | str = await cache.first_use(namespace, token, ttl)  # type: ignore[arg-type]
            except NodeError as exc:
                got = exc.log_reason
            assert got == expected, (step, token, namespace, ttl, clock.now)
            assert model.live(clock.now) <= len(cache) <= max_entries

    asyncio.run(run())


@pytest.mark.parametrize("ttl", [1, 7, 8, 9, 15, 16, 17, 300])
@pytest.mark.parametrize("start", [1000.0, 1000.25, 1007.999, 1008.0, 1001.0])
async def test_a_replay_one_instant_before_the_ttl_ends_is_refused(
    ttl: int, start: float
) -> None:
    """Just before ``start + ttl`` the token is still spent, at any slot position."""
    clock = Clock(start)
    cache = MemoryReplayCache(clock=clock)
    await cache.first_use("ns", "J", ttl)

    clock.now = start + ttl - 1e-6
    assert not await cache.first_use("ns", "J", ttl)
    clock.now = math.ceil(start + ttl)
    assert await cache.first_use("ns", "J", ttl)


async def test_a_key_reused_at_its_deadline_is_spent_again_for_its_new_ttl() -> None:
    clock = Clock(1000.0)
    cache = MemoryReplayCache(clock=clock)
    await cache.first_use("ns", "J", 8)  # deadline 1008, the end of its slot

    clock.now = 1008.0
    again = await cache.first_use("ns", "J", 8)
    clock.now = 1015.5
    replayed = await cache.first_use("ns", "J", 8)

    assert (again, replayed, len(cache)) == (True, False, 1)


async def test_an_expired_entry_in_a_live_slot_does_not_count_as_full() -> None:
    clock = Clock(1000.0)
    cache = MemoryReplayCache(max_entries=1, clock=clock)
    await cache.first_use("ns", "short", 1)  # deadline 1001, slot ends 1008

    clock.now = 1001.0
    accepted = await cache.first_use("ns", "next", 1)

    assert accepted
    assert len(cache) == 1


async def test_full_of_live_entries_refuses_but_still_answers_replays() -> None:
    cache = MemoryReplayCache(max_entries=1, clock=Clock())
    await cache.first_use("ns", "a", 60)

    replayed = await cache.first_use("ns", "a", 60)
    with pytest.raises(NodeError) as info:
        await cache.first_use("ns", "b", 60)

    assert replayed is False
    assert info.value.log_reason == "replay_cache_full"


async def test_entries_in_earlier_slots_survive_a_later_slot_added_first() -> None:
    """A long TTL first, then short ones: the short slot is dropped on time, the
    long one is kept."""
    clock = Clock(1000.0)
    cache = MemoryReplayCache(clock=clock)
    await cache.first_use("ns", "long", 300)
    await cache.first_use("ns", "short", 2)

    clock.now = 1100.0
    long_refused = not await cache.first_use("ns", "long", 300)
    short_accepted = await cache.first_use("ns", "short", 2)

    assert (long_refused, short_accepted) == (True, True)
    assert len(cache) == 2


async def test_a_clock_that_steps_back_keeps_live_entries_refused() -> None:
    """An injected clock going back before any slot ended loses nothing."""
    clock = Clock(1000.0)
    cache = MemoryReplayCache(clock=clock)
    await cache.first_use("ns", "J", 60)

    clock.now = 900.0
    earlier = await cache.first_use("ns", "J", 60)
    await cache.first_use("ns", "K", 5)  # deadline 905: a slot before J's
    clock.now = 1050.0

    assert earlier is False
    assert not await cache.first_use("ns", "J", 60)
    assert await cache.first_use("ns", "K", 5)


async def test_fractional_ttls_round_up_to_whole_seconds() -> None:
    clock = Clock(1000.5)
    cache = MemoryReplayCache(clock=clock)
    await cache.first_use("ns", "J", 0.2)  # type: ignore[arg-type]

    clock.now = 1001.9
    refused = not await cache.first_use("ns", "J", 1)
    clock.now = 1002.0

    assert refused
    assert await cache.first_use("ns", "J", 1)


async def test_len_counts_each_key_once_after_many_reuses() -> None:
    clock = Clock(1000.0)
    cache = MemoryReplayCache(clock=clock)
    for _ in range(50):
        await cache.first_use("ns", "J", 3)
        clock.now += 3

    assert len(cache) == 1
