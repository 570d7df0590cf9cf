"""C39 E: a limit of N admits at most N in *any* window of its length, also when a
burst ends one minute and another starts the next (the limiter's clock is faked)."""

from __future__ import annotations

import random

import pytest

from gateway.errors import ThrottledError
from gateway.throttle import Throttle
from tests.gateway.conftest import KANYASHREE
from tests.gateway.hostile.support import SCHOOLS

pytestmark = pytest.mark.anyio

MINUTE_START = 1_800_000_000.0 - (1_800_000_000.0 % 60)


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock() -> _Clock:
    return _Clock(MINUTE_START)


async def _admitted(throttle: Throttle, count: int) -> int:
    admitted = 0
    for _ in range(count):
        try:
            await throttle.hit(KANYASHREE, SCHOOLS, "10/minute")
        except ThrottledError:
            continue
        admitted += 1
    return admitted


async def test_a_burst_on_each_side_of_a_minute_boundary_admits_n(
    clock: _Clock,
) -> None:
    throttle = Throttle("200/second", 64, clock=clock.time)

    clock.now = MINUTE_START + 59
    before = await _admitted(throttle, 10)
    clock.now = MINUTE_START + 61
    after = await _admitted(throttle, 10)

    assert (before, after) == (10, 0)


async def test_the_window_frees_a_slot_exactly_a_window_later(clock: _Clock) -> None:
    throttle = Throttle("200/second", 64, clock=clock.time)

    clock.now = MINUTE_START + 59
    await _admitted(throttle, 10)
    clock.now = MINUTE_START + 118.9
    early = await _admitted(throttle, 1)
    clock.now = MINUTE_START + 119.1
    late = await _admitted(throttle, 10)

    assert (early, late) == (0, 10)


async def test_no_sixty_seconds_ever_hold_more_than_n(clock: _Clock) -> None:
    throttle = Throttle("200/second", 64, clock=clock.time)
    chance = random.Random(39)
    times = sorted(MINUTE_START + chance.uniform(0, 240) for _ in range(200))

    admitted: list[float] = []
    for moment in times:
        clock.now = moment
        if await _admitted(throttle, 1):
            admitted.append(moment)

    assert admitted
    for index, start in enumerate(admitted):
        inside = [t for t in admitted[index:] if t < start + 60]
        assert len(inside) <= 10
