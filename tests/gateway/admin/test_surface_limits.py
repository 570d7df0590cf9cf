"""AdminLimiter, adversarially: failures per peer, requests per identity, apart."""

from __future__ import annotations

import pytest

from gateway.admin.surface import AdminLimiter
from gateway.errors import ConfigError


class _Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_asking_whether_a_peer_may_try_never_locks_it_out() -> None:
    limiter = AdminLimiter("2/minute", clock=_Clock())

    answers = [limiter.peer_allowed("192.0.2.7") for _ in range(100)]

    assert all(answers)


def test_a_peer_locked_out_is_let_in_again_once_its_oldest_failure_leaves() -> None:
    """A failure exactly one period old still counts; a moment later it does not."""
    clock = _Clock()
    limiter = AdminLimiter("2/minute", clock=clock)
    limiter.failed("192.0.2.7")
    clock.now += 10
    limiter.failed("192.0.2.7")

    clock.now = 1060.0
    at_the_edge = limiter.peer_allowed("192.0.2.7")
    clock.now = 1060.001
    after = limiter.peer_allowed("192.0.2.7")

    assert (at_the_edge, after) == (False, True)


def test_failures_beyond_the_limit_do_not_extend_the_lockout() -> None:
    """Refused peers are not checked, so they add no failures; if a caller counts
    one anyway, the window still frees when its oldest admitted failure leaves."""
    clock = _Clock()
    limiter = AdminLimiter("2/minute", clock=clock)
    limiter.failed("192.0.2.7")
    limiter.failed("192.0.2.7")
    for _ in range(50):
        clock.now += 1
        limiter.failed("192.0.2.7")

    clock.now = 1060.001

    assert limiter.peer_allowed("192.0.2.7")


def test_an_actor_named_like_a_peer_shares_no_window_with_it() -> None:
    limiter = AdminLimiter("1/minute", clock=_Clock())
    limiter.failed("127.0.0.1")

    assert limiter.admit("127.0.0.1")
    assert not limiter.peer_allowed("127.0.0.1")
    assert not limiter.admit("127.0.0.1")
    assert not limiter.peer_allowed("127.0.0.1")


def test_ipv6_peers_are_counted_apart() -> None:
    limiter = AdminLimiter("1/minute", clock=_Clock())
    limiter.failed("::1")

    assert not limiter.peer_allowed("::1")
    assert limiter.peer_allowed("::2")
    assert limiter.peer_allowed("0:0:0:0:0:0:0:1")


@pytest.mark.parametrize("rate", ["", "often", "2/fortnight", "-1/minute", "2 per"])
def test_a_rate_that_is_not_a_rate_is_a_config_error(rate: str) -> None:
    with pytest.raises(ConfigError, match="not a rate"):
        AdminLimiter(rate)
