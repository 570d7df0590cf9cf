"""The node's own moving window: exact limits, Retry-After, idle keys, no threads."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import ThrottledError
from gateway.throttle import LocalWindow, Throttle
from tests.gateway.conftest import IFMS, KANYASHREE
from tests.gateway.hostile.support import SCHOOLS, STUDENTS

CLOSED = "redis://127.0.0.1:1/0"


class _Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _admitted(window: LocalWindow, key: str, count: int, limit: int = 3) -> int:
    return sum(window.hit(key, limit, 60) is None for _ in range(count))


async def _retry_after(throttle: Throttle, rate: str = "3/minute") -> str | None:
    """Retry-After of a refused hit, or None when the hit is admitted."""
    try:
        await throttle.hit(KANYASHREE, SCHOOLS, rate)
    except ThrottledError as exc:
        return exc.headers["Retry-After"]
    return None


def test_the_limit_is_admitted_and_the_next_hit_refused() -> None:
    """N hits in one instant pass, the N+1st does not."""
    window = LocalWindow(_Clock())

    assert _admitted(window, "a", 4) == 3


def test_a_slot_frees_only_once_the_oldest_hit_has_left() -> None:
    """A hit exactly one period old still counts; a moment later it does not."""
    clock = _Clock()
    window = LocalWindow(clock)
    _admitted(window, "a", 1)
    clock.now += 30
    _admitted(window, "a", 2)

    clock.now = 1060.0
    at_the_edge = _admitted(window, "a", 1)
    clock.now = 1060.001
    after = _admitted(window, "a", 2)

    assert (at_the_edge, after) == (0, 1)


def test_the_wait_is_the_time_until_the_oldest_hit_leaves() -> None:
    """A refusal says how long until the window has room."""
    clock = _Clock()
    window = LocalWindow(clock)
    for step in (0, 10, 20):
        clock.now = 1000.0 + step
        window.hit("a", 3, 60)

    clock.now = 1030.5

    assert window.hit("a", 3, 60) == pytest.approx(29.5)


def test_wait_answers_as_a_hit_would_and_counts_nothing() -> None:
    """A check before a hit: the same answer, and the window is left as it was."""
    clock = _Clock()
    window = LocalWindow(clock)
    unknown = window.wait("a", 3, 60)
    keys_after_check = len(window)
    for step in (0, 10, 20):
        clock.now = 1000.0 + step
        window.hit("a", 3, 60)

    clock.now = 1030.5
    full = window.wait("a", 3, 60)
    clock.now = 1060.5
    freed = [window.wait("a", 3, 60) for _ in range(5)]

    assert (unknown, keys_after_check) == (None, 0)
    assert full == pytest.approx(29.5)
    assert freed == [None] * 5
    assert window.hit("a", 3, 60) is None
    assert window.hit("a", 3, 60) is not None


@given(st.lists(st.floats(0, 300, allow_nan=False), min_size=1, max_size=60))
def test_decisions_match_a_log_of_every_admitted_hit(moments: list[float]) -> None:
    """Admitted exactly when fewer than N admitted hits are at most P old."""
    clock = _Clock(0.0)
    window = LocalWindow(clock)
    admitted: list[float] = []

    for moment in sorted(moments):
        clock.now = moment
        expected = sum(t >= moment - 60 for t in admitted) < 3
        assert (window.hit("a", 3, 60) is None) == expected
        if expected:
            admitted.append(moment)


def test_a_limit_of_zero_admits_nothing_and_holds_no_key() -> None:
    """A zero rate refuses for a whole period and stores nothing."""
    window = LocalWindow(_Clock())

    assert window.hit("a", 0, 60) == 60
    assert len(window) == 0


def test_keys_are_independent() -> None:
    """One key at its limit leaves another untouched."""
    window = LocalWindow(_Clock())
    _admitted(window, "a", 3)

    assert _admitted(window, "b", 3) == 3


def test_idle_keys_are_swept_so_memory_stays_bounded() -> None:
    """Many one-off keys over time never pile up beyond twice the active ones."""
    clock = _Clock()
    window = LocalWindow(clock, sweep_at=8)
    held = []

    for round_ in range(50):
        clock.now += 61
        for index in range(8):
            window.hit(f"{round_}-{index}", 3, 60)
        held.append(len(window))

    assert max(held) <= 16


def test_a_sweep_keeps_the_keys_still_in_their_window() -> None:
    """Sweeping idle keys never resets the count of an active one."""
    clock = _Clock()
    window = LocalWindow(clock, sweep_at=4)
    _admitted(window, "busy", 3)
    clock.now += 30

    for index in range(20):
        window.hit(f"other-{index}", 3, 60)

    assert _admitted(window, "busy", 1) == 0


@pytest.mark.anyio
async def test_the_throttle_keys_by_client_service_and_rate() -> None:
    """Another client, service or rate is another window."""
    throttle = Throttle("200/second", 64, clock=_Clock())
    for _ in range(3):
        await throttle.hit(KANYASHREE, SCHOOLS, "3/minute")

    await throttle.hit(IFMS, SCHOOLS, "3/minute")
    await throttle.hit(KANYASHREE, STUDENTS, "3/minute")
    await throttle.hit(KANYASHREE, SCHOOLS, "4/minute")


@pytest.mark.anyio
async def test_a_burst_across_a_minute_boundary_cannot_get_twice_the_limit() -> None:
    """C39 E on the node's own window: 3 at :59 and none at :01."""
    clock = _Clock(1_800_000_000.0 - (1_800_000_000.0 % 60) + 59)
    throttle = Throttle("200/second", 64, clock=clock)
    before = [await _retry_after(throttle) for _ in range(3)]

    clock.now += 2
    after = [await _retry_after(throttle) for _ in range(3)]

    assert before == [None] * 3
    assert after == ["58"] * 3


@pytest.mark.anyio
async def test_retry_after_is_measured_on_the_window_clock() -> None:
    """Retry-After rounds up the wait, on the clock the window keeps."""
    clock = _Clock(5.0)
    throttle = Throttle("200/second", 64, clock=clock)
    for step in (0, 10, 20):
        clock.now = 5.0 + step
        await _retry_after(throttle)

    clock.now = 35.5

    assert await _retry_after(throttle) == "30"


@pytest.mark.anyio
async def test_retry_after_is_never_below_one_second() -> None:
    """At the very edge of the window the wait rounds to 1, not 0."""
    clock = _Clock()
    throttle = Throttle("200/second", 64, clock=clock)
    for _ in range(3):
        await _retry_after(throttle)

    clock.now += 60

    assert await _retry_after(throttle) == "1"


@pytest.mark.anyio
async def test_the_redis_fallback_counts_on_the_node_window() -> None:
    """With Redis down the node's own window limits, frees and times the wait."""
    clock = _Clock()
    throttle = Throttle("200/second", 64, CLOSED, clock=clock)
    first = [await _retry_after(throttle) for _ in range(4)]
    clock.now += 60.5
    later = await _retry_after(throttle)
    await throttle.aclose()

    assert first == [None, None, None, "60"]
    assert later is None


@pytest.mark.anyio
async def test_a_hit_starts_no_thread_and_no_task(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Between hits the loop runs, yet nothing is handed to a thread or a task."""
    handed: list[str] = []
    real_to_thread, real_create_task = asyncio.to_thread, asyncio.create_task

    def to_thread(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        handed.append("thread")
        return real_to_thread(func, *args, **kwargs)

    def create_task(coro: Any, **kwargs: Any) -> Any:
        handed.append("task")
        return real_create_task(coro, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", to_thread)
    monkeypatch.setattr(asyncio, "create_task", create_task)
    throttle = Throttle("200/second", 64)

    for _ in range(20):
        await throttle.hit(KANYASHREE, SCHOOLS, "100/minute")
        await asyncio.sleep(0)

    assert handed == []
