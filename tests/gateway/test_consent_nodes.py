"""Two nodes in front of one registry, sharing one consent store in PostgreSQL."""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from gateway.app import app_for_node
from gateway.client import DepartmentClient
from gateway.demo.setup import DemoDeployment, prepare
from gateway.deployment import Deployment, load_deployment
from gateway.identifiers import ClientId, ServiceId
from gateway.node import Node
from gateway.settings import ConsentStoreSettings
from gateway.signing import sign_response
from policies.consentpg import PostgresConsentStore
from registry_stub.app import create_app as create_registry
from registry_stub.seed import sample_students
from tests.gateway.conftest import KANYASHREE

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

STUDENTS = ServiceId(ClientId("WB", "GOV", "SED", "banglarshiksha"), "students")
PURPOSE = "kanyashree-eligibility"


@dataclasses.dataclass
class Pair:
    demo: DemoDeployment
    a: Node
    b: Node
    client_a: DepartmentClient
    client_b: DepartmentClient


def _on_shared_store(
    deployment: Deployment, node_id: str, dsn: str, schema: str
) -> Deployment:
    settings = deployment.settings.model_copy(
        update={
            "node_id": node_id,
            "log": deployment.settings.log.model_copy(
                update={"sqlite_path": f"{node_id}-messagelog.db"}
            ),
            "consent_store": ConsentStoreSettings(
                store="postgres", postgres_dsn=dsn, postgres_schema=schema
            ),
        }
    )
    return dataclasses.replace(deployment, settings=settings)


@pytest.fixture
async def schema(postgres_dsn: str) -> AsyncIterator[str]:
    """The consent schema the two nodes share, dropped after the test."""
    name = f"consent_nodes_{secrets.token_hex(6)}"
    try:
        yield name
    finally:
        conn = await asyncpg.connect(postgres_dsn)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        finally:
            await conn.close()


@pytest.fixture
async def pair(
    tmp_path: Path,
    registry_db: Path,
    monkeypatch: pytest.MonkeyPatch,
    postgres_dsn: str,
    schema: str,
) -> AsyncIterator[Pair]:
    demo = prepare(tmp_path / "deployment", registry_db=registry_db)
    for name, value in demo.environ().items():
        monkeypatch.setenv(name, value)
    deployment = load_deployment(demo.config_dir, demo.state_dir)
    registry_key = demo.registry_key
    if registry_key is None:
        raise RuntimeError("the deployment has no registry key")

    def sign(status: int, headers: dict[str, str], body: bytes) -> dict[str, str]:
        return sign_response(registry_key, status=status, headers=headers, body=body)

    registry = httpx.AsyncClient(
        transport=httpx.ASGITransport(
            create_registry(registry_db, response_signer=sign)
        )
    )
    nodes: list[Node] = []
    https: list[httpx.AsyncClient] = []
    try:
        for node_id in ("node-a", "node-b"):
            node = await Node.start(
                _on_shared_store(deployment, node_id, postgres_dsn, schema),
                http_client=registry,
                passphrase=demo.passphrase,
            )
            nodes.append(node)
            https.append(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(
                        app_for_node(node), client=("127.0.0.1", 40000)
                    ),
                    base_url=demo.mediator_url,
                )
            )
        clients = [
            _client(demo, node, http) for node, http in zip(nodes, https, strict=True)
        ]
        yield Pair(demo, nodes[0], nodes[1], clients[0], clients[1])
    finally:
        for http in https:
            await http.aclose()
        for node in nodes:
            await node.stop()


def _client(
    demo: DemoDeployment, node: Node, http: httpx.AsyncClient
) -> DepartmentClient:
    return DepartmentClient(
        client_id=KANYASHREE,
        key=demo.client_keys[KANYASHREE],
        audience=demo.audience,
        base_url=demo.mediator_url,
        http=http,
        node_keys=node.keyring.registered_keys(),
    )


def _girl(demo: DemoDeployment) -> dict[str, Any]:
    return sample_students(demo.registry_db, gender="F", classes=range(8, 13), limit=1)[
        0
    ]


async def _verify(client: DepartmentClient, student: dict[str, Any]) -> Any:
    year, month, day = student["date_of_birth"].split("-")
    body = {
        "applicant": {
            "registry_uid": student["student_id"],
            "dob": f"{day}/{month}/{year}",
        },
        "scheme_year": "2026-27",
    }
    return await client.call(
        "POST", STUDENTS, "/verify-enrolment", json=body, purpose=PURPOSE
    )


async def _grant_on(node: Node, student_id: str) -> str:
    purpose = node.deployment.policies.purposes.get(PURPOSE)
    assert purpose is not None
    now = time.time()
    record = await node.consents.grant(
        subject=student_id,
        client=KANYASHREE,
        purpose=purpose,
        granted_by_role="guardian",
        granted_by_name="Guardian Name",
        subject_is_minor=True,
        valid_from=now - 60,
        valid_until=now + 3600,
        actor="test",
    )
    return record.consent_id


async def test_both_nodes_use_the_shared_postgres_store(pair: Pair) -> None:
    assert isinstance(pair.a.consents, PostgresConsentStore)
    assert isinstance(pair.b.consents, PostgresConsentStore)


async def test_consent_granted_on_one_node_allows_an_exchange_on_the_other(
    pair: Pair,
) -> None:
    student = _girl(pair.demo)
    assert (await _verify(pair.client_b, student)).status == 403

    await _grant_on(pair.a, student["student_id"])

    answer = await _verify(pair.client_b, student)
    assert answer.status == 200
    assert answer.json()["registry_uid"] == student["student_id"]


async def test_revocation_on_one_node_denies_the_next_exchange_on_the_other(
    pair: Pair,
) -> None:
    student = _girl(pair.demo)
    consent_id = await _grant_on(pair.a, student["student_id"])
    assert (await _verify(pair.client_b, student)).status == 200

    await pair.a.consents.revoke(consent_id, actor="guardian")

    answer = await _verify(pair.client_b, student)
    assert answer.status == 403
    assert answer.error_type == "Client.consent_required"


async def test_history_written_by_one_node_verifies_on_the_other(pair: Pair) -> None:
    consent_id = await _grant_on(pair.a, _girl(pair.demo)["student_id"])
    await pair.a.consents.revoke(consent_id, actor="guardian")

    assert pair.b.consents.signed
    assert await pair.b.consents.verify_history(consent_id)
