"""Response signing through the pluggable signer."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from registry_stub.app import create_app

pytestmark = pytest.mark.anyio


class RecordingSigner:
    """Signs with a digest of the body and remembers what it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, dict[str, str], bytes]] = []

    def __call__(
        self, status: int, headers: dict[str, str], body: bytes
    ) -> dict[str, str]:
        self.calls.append((status, headers, body))
        return {"Signature": hashlib.sha256(body).hexdigest()}


async def _get(app: Starlette, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://registry") as client,
    ):
        return await client.get(path)


@pytest.mark.parametrize(
    ("path", "status"),
    [("/api/openapi.json", 200), ("/api/students/WB201900001236", 404),
     ("/nowhere", 404)],
)  # fmt: skip
async def test_every_response_carries_the_signer_headers(
    db: Path, path: str, status: int
) -> None:
    signer = RecordingSigner()
    response = await _get(create_app(db, response_signer=signer), path)
    assert response.status_code == status
    assert response.headers["signature"] == hashlib.sha256(response.content).hexdigest()


async def test_signer_sees_status_headers_and_the_whole_body(db: Path) -> None:
    signer = RecordingSigner()
    response = await _get(create_app(db, response_signer=signer), "/api/openapi.json")
    [(status, headers, body)] = signer.calls
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert headers["content-length"] == str(len(body))
    assert body == response.content


async def test_without_a_signer_nothing_is_added(db: Path) -> None:
    response = await _get(create_app(db), "/api/openapi.json")
    assert "signature" not in response.headers
