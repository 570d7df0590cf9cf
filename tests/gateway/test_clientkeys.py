"""Client keys at a JWKS URL: cache, refresh, stale age, bad sets (C34)."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from gateway.client import new_client_key
from gateway.clientkeys import RemoteJwks

pytestmark = pytest.mark.anyio

URL = "http://127.0.0.1:9/jwks.json"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Endpoint:
    """A JWKS endpoint whose document and status the test sets."""

    def __init__(self, *kids: str) -> None:
        self.jwks: dict[str, Any] = {"keys": [_jwk(k) for k in kids]}
        self.status = 200
        self.calls = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        assert str(request.url) == URL
        return httpx.Response(self.status, json=self.jwks)


def _jwk(kid: str) -> dict[str, Any]:
    return new_client_key(kid)[1]


def _remote(endpoint: Endpoint, clock: Clock) -> RemoteJwks:
    return RemoteJwks(
        URL,
        owner="IN/GOV/SED/mdm-portal",
        ttl_s=3600,
        cooldown_s=30,
        max_stale_s=86_400,
        transport=httpx.MockTransport(endpoint.handler),
        clock=clock,
    )


async def test_a_new_kid_is_fetched_on_demand_within_the_ttl() -> None:
    endpoint, clock = Endpoint("edu-2026-1"), Clock()
    remote = _remote(endpoint, clock)
    assert await remote.get("edu-2026-1") is not None
    endpoint.jwks = {"keys": [_jwk("edu-2026-2")]}
    clock.now += 35

    key = await remote.get("edu-2026-2")

    assert key is not None
    assert endpoint.calls == 2


async def test_b_unknown_kids_cost_one_fetch_per_cooldown() -> None:
    endpoint, clock = Endpoint("edu-2026-1"), Clock()
    remote = _remote(endpoint, clock)

    found = [await remote.get(f"random-{i}") for i in range(1000)]
    clock.now += 31
    found += [await remote.get(f"again-{i}") for i in range(1000)]

    assert found == [None] * 2000
    assert endpoint.calls == 2


async def test_c_cached_keys_work_while_the_endpoint_fails_then_fail_closed() -> None:
    endpoint, clock = Endpoint("edu-2026-1"), Clock()
    remote = _remote(endpoint, clock)
    await remote.get("edu-2026-1")
    endpoint.status = 500

    clock.now += 3600 + 600
    during_outage = await remote.get("edu-2026-1")
    clock.now += 86_400
    after_max_stale = await remote.get("edu-2026-1")

    assert during_outage is not None
    assert after_max_stale is None


async def test_d_a_removed_kid_is_refused_after_the_refresh() -> None:
    endpoint, clock = Endpoint("edu-2026-1", "edu-2026-2"), Clock()
    remote = _remote(endpoint, clock)
    assert await remote.get("edu-2026-1") is not None
    endpoint.jwks = {"keys": [_jwk("edu-2026-2")]}

    clock.now += 3600
    key = await remote.get("edu-2026-1")

    assert key is None


async def test_e_a_set_with_a_duplicate_kid_is_refused_and_the_old_set_kept() -> None:
    endpoint, clock = Endpoint("edu-2026-1"), Clock()
    remote = _remote(endpoint, clock)
    await remote.get("edu-2026-1")
    endpoint.jwks = {"keys": [_jwk("edu-2026-1"), _jwk("edu-2026-1")]}
    clock.now += 3600

    with capture_logs() as logs:
        key = await remote.get("edu-2026-1")

    assert key is not None
    refresh = [e for e in logs if e["event"] == "jwks_refresh"]
    assert refresh[0]["outcome"] == "rejected"
    assert refresh[0]["log_level"] == "warning"


async def test_a_redirect_is_not_followed() -> None:
    clock = Clock()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"location": "http://127.0.0.2/x"})

    remote = RemoteJwks(
        URL, owner="x", transport=httpx.MockTransport(handler), clock=clock
    )
    with capture_logs() as logs:
        assert await remote.get("k") is None

    assert logs[0]["error"] == "status_302"


async def test_a_document_over_the_size_limit_is_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b" " * 70_000 + b"{}")

    remote = RemoteJwks(URL, owner="x", transport=httpx.MockTransport(handler))
    with capture_logs() as logs:
        assert await remote.get("k") is None

    assert logs[0]["error"] == "too_large"


# -- a real endpoint on loopback ------------------------------------------------


@pytest.fixture
def jwks_server() -> Iterator[tuple[str, dict[str, Any]]]:
    state: dict[str, Any] = {"jwks": {"keys": [_jwk("edu-2026-1")]}, "calls": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state["calls"] += 1
            body = json.dumps(state["jwks"]).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/jwks.json", state
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.sockets
async def test_a_client_rotates_its_keys_at_a_real_endpoint(
    jwks_server: tuple[str, dict[str, Any]],
) -> None:
    url, state = jwks_server
    clock = Clock()
    remote = RemoteJwks(url, owner="IN/GOV/SED/mdm-portal", cooldown_s=30, clock=clock)
    assert await remote.get("edu-2026-1") is not None

    state["jwks"] = {"keys": [_jwk("edu-2026-2")]}
    clock.now += 31

    assert await remote.get("edu-2026-2") is not None
    assert await remote.get("edu-2026-1") is None
    assert state["calls"] == 2
