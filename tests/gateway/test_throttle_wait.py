"""LocalWindow.wait, adversarially: the verdict of a hit, counting nothing."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.throttle import LocalWindow


class _Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


#: (clock step, key, limit index, check first)
_STEP = st.tuples(
    st.one_of(
        st.sampled_from([0.0, 0.001, 59.999, 60.0, 60.001, 120.0]),
        st.floats(min_value=0, max_value=90, allow_nan=False),
    ),
    st.sampled_from(["192.0.2.1", "192.0.2.2", "ops-1", "::1"]),
    st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(
    limit=st.integers(min_value=0, max_value=4),
    sweep_at=st.integers(min_value=1, max_value=4),
    steps=st.lists(_STEP, max_size=80),
)
def test_wait_agrees_with_hit_and_leaves_later_hits_unchanged(
    limit: int, sweep_at: int, steps: list[tuple[float, str, bool]]
) -> None:
    """Two windows see the same hits; one is also asked before each hit.

    Every check answers as the hit right after it does, and the checked window
    answers every hit as the unchecked one, sweeps of idle keys included.
    """
    clock = _Clock()
    checked = LocalWindow(clock, sweep_at=sweep_at)
    plain = LocalWindow(clock, sweep_at=sweep_at)

    for step, key, check_twice in steps:
        clock.now += step
        before = checked.wait(key, limit, 60)
        if check_twice:
            assert checked.wait(key, limit, 60) == before
        verdict = checked.hit(key, limit, 60)
        assert plain.hit(key, limit, 60) == verdict
        assert (before is None) == (verdict is None)
        if verdict is not None:
            assert before == verdict
            assert 0 <= verdict <= 60


def test_a_wait_on_an_unknown_key_holds_nothing() -> None:
    window = LocalWindow(_Clock(), sweep_at=1)

    for n in range(1000):
        assert window.wait(f"198.51.100.{n}", 3, 60) is None

    assert len(window) == 0


def test_a_wait_never_exceeds_the_period() -> None:
    """At this instant ``now + 60 - now`` rounds to just over 60 s, which would
    have put 61 in Retry-After."""
    clock = _Clock(1022.2415101082223)
    assert (clock.now + 60) - clock.now > 60
    window = LocalWindow(clock)

    assert window.hit("ops-1", 1, 60) is None
    assert window.hit("ops-1", 1, 60) == 60
    assert window.wait("ops-1", 1, 60) == 60
