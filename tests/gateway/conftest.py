"""The node under test, in process: a seeded registry behind a started node.

``harness`` gives a node started on a fresh deployment (new keys for every
subsystem, a new keyring), whose provider client talks to the registry app in
process, and departmental clients that talk to the node in process. Tests that
need real sockets start their own servers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gateway.app import MediatorApp, app_for_node
from gateway.client import DepartmentClient
from gateway.demo.setup import DemoDeployment, prepare
from gateway.deployment import load_deployment
from gateway.identifiers import ClientId
from gateway.keyring import SigningKey
from gateway.msglog.sqlite import SqliteLogStore
from gateway.node import Node
from gateway.signing import sign_response
from registry_stub.app import create_app as create_registry
from registry_stub.seed import seed_database

KANYASHREE = ClientId("WB", "GOV", "WCD", "kanyashree")
SABOOJSATHI = ClientId("WB", "GOV", "BCW", "saboojsathi")
IFMS = ClientId("WB", "GOV", "FIN", "ifms")


@pytest.fixture(scope="session")
def registry_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small seeded registry shared by the session (tests must not write to it)."""
    path = tmp_path_factory.mktemp("registry") / "registry.db"
    seed_database(path, students=1200, schools=24)
    return path


@dataclass
class Harness:
    demo: DemoDeployment
    node: Node
    app: MediatorApp
    http: httpx.AsyncClient
    registry_http: httpx.AsyncClient
    make_client: Callable[..., DepartmentClient]

    def client(self, cid: ClientId, key: SigningKey | None = None) -> DepartmentClient:
        return self.make_client(cid, key)

    async def records(self) -> list[dict[str, object]]:
        """Every message-log record written so far, in order, with its hash."""
        import orjson

        store = SqliteLogStore(self.demo.state_dir / "messagelog.db")
        await store.open()
        try:
            found = [r async for chunk in store.iter_records() for r in chunk]
        finally:
            await store.close()
        return [{**orjson.loads(r.canonical), "hash": r.hash} for r in found]

    async def exchanges(self) -> list[dict[str, object]]:
        """The final record of each exchange, in order: request records left out."""
        return [r for r in await self.records() if r["direction"] != "request"]


@pytest.fixture
async def harness(
    tmp_path: Path, registry_db: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Harness]:
    demo = prepare(tmp_path / "deployment", registry_db=registry_db)
    for name, value in demo.environ().items():
        monkeypatch.setenv(name, value)
    deployment = load_deployment(demo.config_dir, demo.state_dir)

    registry_key = demo.registry_key
    if registry_key is None:
        raise RuntimeError("the deployment has no registry key")

    def sign(status: int, headers: dict[str, str], body: bytes) -> dict[str, str]:
        return sign_response(registry_key, status=status, headers=headers, body=body)

    registry_app = create_registry(registry_db, response_signer=sign)
    registry_http = httpx.AsyncClient(transport=httpx.ASGITransport(registry_app))
    node = await Node.start(
        deployment, http_client=registry_http, passphrase=demo.passphrase
    )
    app = app_for_node(node)
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app, client=("127.0.0.1", 40000)),
        base_url=demo.mediator_url,
    )

    def make_client(cid: ClientId, key: SigningKey | None = None) -> DepartmentClient:
        return DepartmentClient(
            client_id=cid,
            key=key or demo.client_keys[cid],
            audience=demo.audience,
            base_url=demo.mediator_url,
            http=http,
            node_keys=node.keyring.registered_keys(),
        )

    try:
        yield Harness(demo, node, app, http, registry_http, make_client)
    finally:
        await http.aclose()
        await node.stop()
