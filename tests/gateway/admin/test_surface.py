"""The admin surface's rate limits: per identity on the node's window, per peer."""

from __future__ import annotations

import httpx
import pytest

from gateway.admin.auth import Role, add_key
from gateway.admin.surface import AdminLimiter
from gateway.errors import ConfigError
from tests.gateway.conftest import Harness

pytestmark = pytest.mark.anyio

API = "/admin/api/v1"


class _Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _admitted(limiter: AdminLimiter, actor: str, count: int) -> int:
    return sum(limiter.admit(actor) for _ in range(count))


def test_an_identity_is_refused_over_the_rate() -> None:
    """N requests in one window pass, the N+1st does not."""
    limiter = AdminLimiter("3/minute", clock=_Clock())

    assert _admitted(limiter, "ops-1", 4) == 3


def test_the_window_slides_one_request_at_a_time() -> None:
    """A slot frees when the oldest request leaves the window, not at a boundary."""
    clock = _Clock()
    limiter = AdminLimiter("2/minute", clock=clock)
    _admitted(limiter, "ops-1", 1)
    clock.now += 30
    _admitted(limiter, "ops-1", 1)

    clock.now += 30.001
    first_left = _admitted(limiter, "ops-1", 2)
    clock.now += 30
    second_left = _admitted(limiter, "ops-1", 2)

    assert (first_left, second_left) == (1, 1)


def test_identities_are_counted_apart() -> None:
    """One identity at its limit leaves another untouched."""
    limiter = AdminLimiter("2/minute", clock=_Clock())
    _admitted(limiter, "ops-1", 2)

    assert _admitted(limiter, "ops-2", 2) == 2


def test_a_peer_is_refused_once_its_failures_fill_the_window() -> None:
    """N failed authentications close the peer; another peer may still try."""
    limiter = AdminLimiter("2/minute")
    limiter.failed("192.0.2.7")
    after_one = limiter.peer_allowed("192.0.2.7")
    limiter.failed("192.0.2.7")

    assert after_one is True
    assert limiter.peer_allowed("192.0.2.7") is False
    assert limiter.peer_allowed("192.0.2.8") is True


def test_requests_do_not_count_as_failures() -> None:
    """An identity's requests leave its peer's failure budget alone."""
    limiter = AdminLimiter("1/minute", clock=_Clock())
    _admitted(limiter, "127.0.0.1", 3)

    assert limiter.peer_allowed("127.0.0.1") is True


def test_a_rate_that_is_not_a_rate_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="is not a rate"):
        AdminLimiter("often")


async def _keys(harness: Harness, key: str) -> httpx.Response:
    return await harness.http.get(
        f"{harness.demo.mediator_url}{API}/keys",
        headers={"authorization": f"ApiKey {key}"},
    )


async def test_over_the_rate_the_api_answers_an_xroad_429_until_the_window_slides(
    harness: Harness,
) -> None:
    """The refusal is typed as the client's fault; the next slot admits again."""
    clock = _Clock()
    harness.node.ops.admin_limiter = AdminLimiter("2/minute", clock=clock)
    _, key = add_key(harness.node.deployment.path("admin_keys.json"), Role.OPS)

    statuses = [(await _keys(harness, key)).status_code for _ in range(2)]
    refused = await _keys(harness, key)
    clock.now += 60.001
    later = await _keys(harness, key)

    assert statuses == [200, 200]
    assert refused.status_code == 429
    assert refused.json() == {
        "type": "Client.rate_limited",
        "message": "Too many requests",
        "detail": "",
    }
    assert refused.headers["x-road-error"] == "Client.rate_limited"
    assert later.status_code == 200


async def test_a_peer_whose_failures_fill_the_window_is_refused_before_login(
    harness: Harness,
) -> None:
    """After N failed credentials even a valid one from that peer gets 429."""
    harness.node.ops.admin_limiter = AdminLimiter("2/minute", clock=_Clock())
    _, key = add_key(harness.node.deployment.path("admin_keys.json"), Role.OPS)

    failures = [(await _keys(harness, "mak_nothing")).status_code for _ in range(2)]
    valid = await _keys(harness, key)

    assert failures == [401, 401]
    assert valid.status_code == 429
    assert valid.headers["x-road-error"] == "Client.rate_limited"
