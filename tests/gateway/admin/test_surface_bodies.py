"""Request bodies on the admin surface: one that ends early, one where none belongs."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

import orjson
import pytest

from gateway.admin.auth import Role, add_key
from gateway.admin.surface import handle_admin
from tests.gateway.conftest import Harness

pytestmark = pytest.mark.anyio

API = "/admin/api/v1"
Message = MutableMapping[str, Any]


class _Peer:
    """The client's side of one request: what it sends, then what it is sent."""

    def __init__(self, *messages: Message) -> None:
        self._messages: Iterator[Message] = iter(messages)
        self.sent: list[Message] = []
        self.received = 0

    async def receive(self) -> Message:
        self.received += 1
        return next(self._messages, {"type": "http.disconnect"})

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    def answer(self) -> tuple[int, dict[str, Any]]:
        """The status and the JSON body the client was sent."""
        start, body = self.sent[0], self.sent[1]
        return start["status"], orjson.loads(body["body"])


def _scope(harness: Harness, path: str, key: str, length: int = 40) -> dict[str, Any]:
    host = harness.demo.mediator_url.removeprefix("http://")
    return {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "client": ("127.0.0.1", 40000),
        "headers": [
            (b"host", host.encode()),
            (b"authorization", f"ApiKey {key}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(length).encode()),
        ],
    }


@pytest.mark.parametrize(
    ("path", "role"),
    [
        (f"{API}/maintenance", Role.OPS),
        (f"{API}/consents/search", Role.SECURITY_OFFICER),
    ],
)
async def test_a_client_that_leaves_mid_body_is_answered_client_aborted(
    harness: Harness, path: str, role: Role
) -> None:
    """The library's disconnect is not let out to the server, which would print
    a traceback; nothing of the partial body is acted on."""
    _, key = add_key(harness.node.deployment.path("admin_keys.json"), role)
    peer = _Peer({"type": "http.request", "body": b'{"mainten', "more_body": True})

    await handle_admin(
        harness.node, _scope(harness, path, key), peer.receive, peer.send
    )

    status, body = peer.answer()
    assert (status, body["type"]) == (400, "Client.client_aborted")
    assert harness.node.ops.maintenance.on is False


async def test_a_declared_length_over_the_cap_is_refused_before_reading(
    harness: Harness,
) -> None:
    """413 at once, as on the exchange surface: not a wait for 10 MB (or for the
    body deadline) only to refuse it after the first 64 KB."""
    _, key = add_key(harness.node.deployment.path("admin_keys.json"), Role.OPS)
    scope = _scope(harness, f"{API}/maintenance", key, length=10 * 1024 * 1024)
    peer = _Peer({"type": "http.request", "body": b"{", "more_body": True})

    await handle_admin(harness.node, scope, peer.receive, peer.send)

    status, body = peer.answer()
    assert (status, body["type"]) == (413, "Client.body_too_large")
    assert peer.received == 0


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize(
    "framing",
    [{"content-length": "2"}, {"transfer-encoding": "chunked"}],
    ids=["content-length", "chunked"],
)
async def test_the_health_page_refuses_a_body_as_every_admin_page_does(
    harness: Harness, method: str, framing: dict[str, str]
) -> None:
    """It needs no credential and no Host, but a body has no meaning there either."""
    answer = await harness.http.request(
        method,
        f"{harness.demo.mediator_url}/admin/health",
        headers=framing,
        content=b"{}",
    )

    assert answer.status_code == 400
    assert answer.headers["x-road-error"] == "Client.body_not_allowed"
