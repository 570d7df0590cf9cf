"""Through the exchange: every verified token is used once, whatever became of its
request, a replay is refused as replayed before any later refusal, and an exchange
with Redis costs one Redis command for its token and its rate limit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

import gateway.exchange
from gateway.identifiers import ServiceId
from gateway.throttle import KEY_PREFIX, parse_rate
from tests.gateway.admission_support import count_commands
from tests.gateway.conftest import KANYASHREE, Harness
from tests.gateway.hostile.support import (
    SABOOJSATHI,
    SCHOOLS,
    STUDENTS,
    asgi,
    auth_headers,
    send,
)

pytestmark = pytest.mark.anyio

SCHOOL = f"/{SCHOOLS}/19110900503"
ROSTER = f"/{STUDENTS}/roster/19110900503"
PAYROLL = ServiceId(SCHOOLS.provider, "payroll")
REPLAYED = "Client.token_replayed"


@pytest.fixture
async def _redis_env(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    client = aioredis.from_url(redis_url)
    try:
        await client.flushdb()
        # The node loads its script when it starts: nothing is left from before.
        await client.script_flush()
    finally:
        await client.aclose()
    monkeypatch.setenv("MEDIATOR_REDIS_URL", redis_url)


@pytest.fixture
async def redis_harness(_redis_env: None, harness: Harness) -> Harness:
    """The in-process node of ``harness``, started with ``redis.url`` (db 15)."""
    assert harness.node.redis is not None
    assert harness.node.pipeline._admission.combined
    return harness


# -- every verified token is used once -------------------------------------------------


@pytest.mark.parametrize(
    ("path", "claimed", "refusal"),
    [
        pytest.param(f"/{PAYROLL}/x", None, (404, "unknown_service"), id="step-3"),
        pytest.param(
            f"/{SCHOOLS}/_debug/vars", None, (403, "access_denied"), id="step-4"
        ),
        pytest.param(SCHOOL, str(KANYASHREE), (401, "client_mismatch"), id="step-2"),
    ],
)
async def test_a_token_refused_after_verification_is_used(
    harness: Harness, path: str, claimed: str | None, refusal: tuple[int, str]
) -> None:
    """A token captured from a refused request cannot serve another one."""
    headers = auth_headers(harness, SABOOJSATHI)
    refused = {**headers, "x-road-client": claimed} if claimed else headers

    first = await send(harness, "GET", path, client=None, headers=refused)
    again = await send(harness, "GET", SCHOOL, client=None, headers=headers)

    assert (first.status_code, first.headers["x-road-error"]) == (
        refusal[0],
        f"Client.{refusal[1]}",
    )
    assert again.status_code == 401
    assert again.headers["x-road-error"] == "Client.token_replayed"


def _failing_once(real: Callable[..., Any]) -> Callable[..., Any]:
    calls = {"n": 0}

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("a defect in this step")
        return real(*args, **kwargs)

    return flaky


@pytest.mark.parametrize(
    "step_function",
    [pytest.param("resolve", id="step-3"), pytest.param("allowed_from", id="step-4")],
)
async def test_a_failure_in_steps_3_and_4_still_uses_the_token(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, step_function: str
) -> None:
    """A defect in steps 3 or 4 (answered 500 ``internal_error``) still leaves
    the token used: it cannot serve the next exchange."""
    real = getattr(gateway.exchange, step_function)
    monkeypatch.setattr(gateway.exchange, step_function, _failing_once(real))
    headers = auth_headers(harness, SABOOJSATHI)

    failed = await send(harness, "GET", SCHOOL, client=None, headers=headers)
    again = await send(harness, "GET", SCHOOL, client=None, headers=headers)

    last = (await harness.exchanges())[-1]
    assert failed.status_code == 500
    assert again.headers.get("x-road-error") == REPLAYED, (
        f"the token was used again: decision {last['decision']}, "
        f"upstream called {last['upstream_called']}"
    )


@pytest.mark.parametrize(
    ("path", "extra", "refusal"),
    [
        pytest.param(ROSTER, {}, "Client.purpose_required", id="step-6-purpose"),
        pytest.param(
            ROSTER,
            {"x-road-purpose": "kanyashree-eligibility"},
            "Client.purpose_not_allowed",
            id="step-6-wrong-purpose",
        ),
    ],
)
async def test_a_token_refused_after_step_5_is_used(
    harness: Harness, path: str, extra: dict[str, str], refusal: str
) -> None:
    """A refusal after step 5 leaves the token used."""
    headers = auth_headers(harness, SABOOJSATHI)
    first = await send(harness, "GET", path, client=None, headers={**headers, **extra})
    again = await send(
        harness,
        "GET",
        path,
        client=None,
        headers={**headers, "x-road-purpose": "saboojsathi-roster"},
    )

    assert first.headers.get("x-road-error") == refusal
    assert again.headers.get("x-road-error") == REPLAYED


@pytest.mark.redis
async def test_concurrent_uses_of_one_token_serve_one_exchange(
    redis_harness: Harness,
) -> None:
    """The same token sent eight times at once, to an allowed path and to
    refused ones, on a node with Redis: one exchange at most."""
    harness = redis_harness
    headers = auth_headers(harness, SABOOJSATHI)
    paths = [SCHOOL] * 6 + [f"/{PAYROLL}/x", f"/{SCHOOLS}/_debug/vars"]

    answers = await asyncio.gather(
        *(send(harness, "GET", p, client=None, headers=headers) for p in paths)
    )

    errors = [a.headers.get("x-road-error") for a in answers]
    assert (
        errors.count(None)
        + sum(e in {"Client.unknown_service", "Client.access_denied"} for e in errors)
        == 1
    )
    assert errors.count(REPLAYED) == len(paths) - 1


# -- a replay is refused first and never counted ---------------------------------------


@pytest.mark.parametrize(
    "path",
    [pytest.param(SCHOOL, id="allowed"), pytest.param(f"/{PAYROLL}/x", id="unknown")],
)
async def test_a_replayed_token_is_refused_as_replayed_first(
    harness: Harness, path: str
) -> None:
    headers = auth_headers(harness, SABOOJSATHI)
    forwarded = await send(harness, "GET", SCHOOL, client=None, headers=headers)
    assert "x-road-error" not in forwarded.headers

    again = await send(harness, "GET", path, client=None, headers=headers)

    assert again.status_code == 401
    assert again.headers["x-road-error"] == "Client.token_replayed"
    record = (await harness.exchanges())[-1]
    assert record["reason"] == "jti_replayed"
    assert record["upstream_called"] is False


@pytest.mark.parametrize(
    ("path", "extra"),
    [
        pytest.param(f"/{PAYROLL}/x", {}, id="unknown-service"),
        pytest.param(f"/{SCHOOLS}/_debug/vars", {}, id="access-denied"),
        pytest.param(SCHOOL, {"x-road-client": str(KANYASHREE)}, id="client-mismatch"),
        pytest.param(ROSTER, {}, id="purpose-required"),
    ],
)
async def test_a_replay_is_refused_as_replayed_before_later_refusals(
    harness: Harness, path: str, extra: dict[str, str]
) -> None:
    """Whatever else is wrong with the request, a replay says token_replayed."""
    headers = auth_headers(harness, SABOOJSATHI)
    used = await send(harness, "GET", SCHOOL, client=None, headers=headers)
    again = await send(harness, "GET", path, client=None, headers={**headers, **extra})

    assert "x-road-error" not in used.headers
    assert again.headers.get("x-road-error") == REPLAYED


@pytest.mark.redis
async def test_a_replay_is_refused_before_the_throttle_and_not_counted(
    redis_harness: Harness, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a node with Redis, over the limit: a replayed token is still refused
    as replayed, and the window holds one hit only."""
    harness = redis_harness
    monkeypatch.setattr(
        harness.node.shared.throttle, "_default", parse_rate("1/minute")
    )
    first = auth_headers(harness, SABOOJSATHI)
    second = auth_headers(harness, SABOOJSATHI)

    answers = [
        await send(harness, "GET", SCHOOL, client=None, headers=h)
        for h in (first, second, first, second, first)
    ]

    assert [a.headers.get("x-road-error") for a in answers] == [
        None,
        "Client.rate_limited",
        REPLAYED,
        REPLAYED,
        REPLAYED,
    ]
    client = aioredis.from_url(redis_url)
    try:
        windows = [k async for k in client.scan_iter(f"{KEY_PREFIX}*")]
        assert len(windows) == 1
        assert await client.llen(windows[0]) == 1
    finally:
        await client.aclose()


# -- one Redis command an exchange, and Redis failing ----------------------------------


@pytest.mark.redis
async def test_each_exchange_costs_one_redis_command(
    redis_harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From the first exchange on (the node loads its script as it starts):
    admitted, refused in steps 2-4, refused at step 6, throttled, replayed: one
    command each."""
    harness = redis_harness
    sent = count_commands(harness.node.redis, monkeypatch)

    async def commands(path: str, headers: dict[str, str]) -> list[str]:
        sent.clear()
        await send(harness, "GET", path, client=None, headers=headers)
        return list(sent)

    used = auth_headers(harness, SABOOJSATHI)
    assert await commands(SCHOOL, used) == ["EVALSHA"]
    assert await commands(SCHOOL, used) == ["EVALSHA"]  # replayed
    assert await commands(f"/{PAYROLL}/x", used) == ["SET"]  # replayed, step 3
    for path, extra in [
        (f"/{PAYROLL}/x", {}),
        (f"/{SCHOOLS}/_debug/vars", {}),
        (SCHOOL, {"x-road-client": str(KANYASHREE)}),
        (ROSTER, {}),
    ]:
        fresh = {**auth_headers(harness, SABOOJSATHI), **extra}
        assert await commands(path, fresh) == ["SET" if path != ROSTER else "EVALSHA"]
    monkeypatch.setattr(
        harness.node.shared.throttle, "_default", parse_rate("0/minute")
    )
    assert await commands(SCHOOL, auth_headers(harness, SABOOJSATHI)) == ["EVALSHA"]


@pytest.mark.redis
async def test_a_node_whose_redis_fails_refuses_with_503(
    redis_harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With Redis down, the combined path fails closed, for an admitted request
    and for one refused in step 4 alike."""
    harness = redis_harness
    client = harness.node.redis

    async def down(*_args: Any, **_options: Any) -> Any:
        raise RedisConnectionError("down")

    monkeypatch.setattr(client, "execute_command", down)
    allowed = await send(harness, "GET", SCHOOL)
    denied = await send(harness, "GET", f"/{SCHOOLS}/_debug/vars")

    for answer in (allowed, denied):
        assert answer.status_code == 503
        assert (
            answer.headers["x-road-error"] == "Server.Mediator.replay_store_unavailable"
        )


# -- metaservices and the admin surface keep the replay check --------------------------


@pytest.mark.redis
async def test_metaservices_share_the_replay_check_with_the_script(
    redis_harness: Harness,
) -> None:
    """A token used on an exchange (the script's SET) is refused on
    listClients (plain SET), and the other way round."""
    harness = redis_harness
    host = {"host": harness.demo.mediator_url.split("//", 1)[1]}

    async def list_clients(headers: dict[str, str]) -> Any:
        return await asgi(harness, "GET", b"/r1/listClients", {**host, **headers}, b"")

    used_on_exchange = auth_headers(harness, SABOOJSATHI)
    await send(harness, "GET", SCHOOL, client=None, headers=used_on_exchange)
    used_on_meta = auth_headers(harness, SABOOJSATHI)
    first_meta = await list_clients(used_on_meta)

    assert first_meta.status_code == 200
    assert (await list_clients(used_on_exchange)).headers["x-road-error"] == REPLAYED
    assert (await list_clients(used_on_meta)).headers["x-road-error"] == REPLAYED
    again = await send(harness, "GET", SCHOOL, client=None, headers=used_on_meta)
    assert again.headers["x-road-error"] == REPLAYED


async def test_the_admin_surface_keeps_the_replay_check(harness: Harness) -> None:
    """A client assertion on the admin API is accepted once."""
    headers = auth_headers(harness, KANYASHREE)
    url = f"{harness.demo.mediator_url}/admin/api/v1/opmonitoring"

    first = await harness.http.get(url, headers=headers)
    again = await harness.http.get(url, headers=headers)

    assert first.status_code == 200
    assert again.status_code == 401
