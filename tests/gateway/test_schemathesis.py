"""schemathesis against the registry's and the admin API's OpenAPI documents, and
against the service documents the node serves through its metaservices.

Cases are drawn from each operation's schema (valid ones and, in negative mode,
ones that break the schema) and sent in process through ASGI; no answer may be a
5xx. The run is bounded: a few examples per operation and mode, no deadline, no
shrinking (a failure is reported with its operation and status instead).
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.result import Ok
from schemathesis.generation.case import Case

from gateway import wire
from gateway.admin.auth import ADMIN_ROLES, Role, add_key
from gateway.identifiers import ClientId, ServiceId
from gateway.metaservices import xroad_path
from registry_stub.app import create_app as create_registry
from tests.gateway.conftest import SABOOJSATHI, Harness

pytestmark = pytest.mark.anyio

EXAMPLES = 6


def _cases(document: dict[str, Any]) -> list[Case[Any]]:
    """A few cases of every operation, in positive and in negative mode."""
    schema = schemathesis.openapi.from_dict(document)
    cases: list[Case[Any]] = []
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            pytest.fail(f"an operation of the document is invalid: {result.err()}")
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            cases += _draw(operation.as_strategy(generation_mode=mode))
    return cases


def _draw(strategy: st.SearchStrategy[Case[Any]]) -> list[Case[Any]]:
    drawn: list[Case[Any]] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(case: Case[Any]) -> None:
        drawn.append(case)

    # An operation with nothing to break has no negative cases at all.
    with contextlib.suppress(Unsatisfiable):
        collect()
    return drawn


def _request(
    http: httpx.AsyncClient, case: Case[Any], base_url: str, headers: dict[str, str]
) -> httpx.Request | None:
    """The case as an httpx request; None if no HTTP client could send it."""
    kwargs = case.as_transport_kwargs(base_url=base_url, headers=headers)
    content = kwargs.get("data")
    try:
        return http.build_request(
            kwargs["method"],
            kwargs["url"],
            headers=kwargs.get("headers"),
            params=kwargs.get("params"),
            json=kwargs.get("json"),
            content=content if isinstance(content, (bytes, str)) else None,
        )
    except (UnicodeEncodeError, TypeError, ValueError, httpx.InvalidURL):
        return None


async def _server_errors(
    http: httpx.AsyncClient,
    cases: list[Case[Any]],
    base_url: str,
    headers: Iterator[dict[str, str]],
) -> list[str]:
    """Every case answered with a 5xx (or raised), as ``METHOD target -> what``."""
    found: list[str] = []
    for case in cases:
        request = _request(http, case, base_url, next(headers))
        if request is None:
            continue
        where = f"{case.method} {request.url.raw_path.decode()[:160]}"
        try:
            response = await http.send(request)
        except Exception as exc:  # noqa: BLE001 (a real server would answer 500)
            found.append(f"{where} -> raised {type(exc).__name__}: {exc}")
            continue
        if response.status_code >= 500:
            found.append(f"{where} -> {response.status_code} {response.text[:120]!r}")
    return found


async def test_the_registry_api_never_answers_a_server_error(
    registry_db: Path, tmp_path: Path
) -> None:
    # A copy: the session's registry must not be written to.
    database = tmp_path / "registry.db"
    shutil.copyfile(registry_db, database)
    app = create_registry(database)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app))
    try:
        document = (await http.get("http://registry/api/openapi.json")).json()
        cases = _cases(document)
        errors = await _server_errors(
            http, cases, "http://registry", itertools.repeat({})
        )
    finally:
        await http.aclose()

    assert len(cases) > 50
    assert errors == []


async def test_the_admin_api_never_answers_a_server_error(harness: Harness) -> None:
    path = harness.node.deployment.path("admin_keys.json")
    keys = [add_key(path, role)[1] for role in sorted(ADMIN_ROLES)]
    base = harness.demo.mediator_url
    document = (await harness.http.get(f"{base}/admin/api/v1/openapi.json")).json()
    cases = _cases(document)

    errors = await _server_errors(
        harness.http,
        cases,
        base,
        itertools.cycle([{"authorization": f"ApiKey {key}"} for key in keys]),
    )

    assert len(cases) > 50
    assert errors == []


def _credentials(harness: Harness, client: ClientId) -> dict[str, str]:
    """Fresh credentials for ``client``: an assertion is accepted once."""
    return {
        "authorization": f"Bearer {harness.client(client).assertion()}",
        "x-road-client": str(client),
    }


def _as_clients(harness: Harness) -> Iterator[tuple[ClientId, dict[str, str]]]:
    """Every subsystem of the deployment in turn, with fresh credentials."""
    for client in itertools.cycle(sorted(harness.demo.client_keys, key=str)):
        yield client, _credentials(harness, client)


async def _meta(harness: Harness, path: str, client: ClientId, **query: str) -> Any:
    """A metaservice's JSON answer; a subsystem that provides nothing has none."""
    answer = await harness.http.get(
        f"{harness.demo.mediator_url}/r1/{path}",
        params=query,
        headers=_credentials(harness, client),
    )
    if answer.status_code == 404:
        return {"service": []}
    assert answer.status_code == 200, (path, answer.status_code)
    return answer.json()


async def _served_documents(
    harness: Harness, caller: ClientId
) -> dict[ServiceId, dict[str, Any]]:
    """Every service document, found as a client finds it: listClients, then
    listMethods of each subsystem, then getOpenAPI of each OPENAPI service."""
    documents: dict[ServiceId, dict[str, Any]] = {}
    for member in (await _meta(harness, "listClients", caller))["member"]:
        ident = member["id"]
        if ident["object_type"] != "SUBSYSTEM":
            continue
        provider = ClientId(
            ident["xroad_instance"],
            ident["member_class"],
            ident["member_code"],
            ident["subsystem_code"],
        )
        listing = await _meta(harness, f"{provider}/listMethods", caller)
        for service in listing["service"]:
            if service["service_type"] == "OPENAPI":
                sid = ServiceId(provider, service["service_code"])
                documents[sid] = await _meta(
                    harness, f"{provider}/getOpenAPI", caller, serviceCode=sid.code
                )
    return documents


async def _allowed(
    harness: Harness, providers: set[ClientId]
) -> dict[tuple[ServiceId, str, str], ClientId]:
    """(service, method, X-Road path) to a client that allowedMethods says may
    call it, so that a case reaches past access control where it can."""
    callers: dict[tuple[ServiceId, str, str], ClientId] = {}
    for client in sorted(harness.demo.client_keys, key=str):
        for provider in providers:
            listing = await _meta(harness, f"{provider}/allowedMethods", client)
            for service in listing["service"]:
                sid = ServiceId(provider, service["service_code"])
                for endpoint in service["endpoint_list"]:
                    key = (sid, endpoint["method"], endpoint["path"])
                    callers.setdefault(key, client)
    return callers


def _purposes(harness: Harness) -> dict[tuple[ClientId, ServiceId], str]:
    return {
        (rule.client, rule.service): rule.purposes[0]
        for rule in harness.node.deployment.policies.access.rules()
        if rule.purposes
    }


@pytest.fixture
def registry_db(registry_db: Path, tmp_path: Path) -> Path:
    """A copy of the session's registry: cases here may write to it."""
    database = tmp_path / "registry-copy.db"
    shutil.copyfile(registry_db, database)
    return database


async def test_the_services_the_node_describes_never_answer_a_server_error(
    harness: Harness,
) -> None:
    """Each case is sent as a client allowed to call its endpoint, with the
    purpose of that client's right, if there is one; else as any client."""
    documents = await _served_documents(harness, SABOOJSATHI)
    callers = await _allowed(harness, {sid.provider for sid in documents})
    purposes = _purposes(harness)
    anyone = _as_clients(harness)
    cases: list[tuple[ServiceId, str, Case[Any]]] = []
    for sid, document in documents.items():
        (server,) = document["servers"]
        assert server["url"] == f"{harness.demo.mediator_url}/r1/{sid}"
        cases += [(sid, server["url"], case) for case in _cases(document)]

    errors: list[str] = []
    for sid, url, case in cases:
        client = callers.get((sid, case.method.upper(), xroad_path(case.path)))
        if client is None:
            client, headers = next(anyone)
        else:
            headers = _credentials(harness, client)
        if (purpose := purposes.get((client, sid))) is not None:
            headers[wire.PURPOSE] = purpose
        errors += await _server_errors(harness.http, [case], url, iter([headers]))

    assert len(documents) >= 2
    assert len(cases) > 50
    assert any(key[0] in documents for key in callers)
    assert errors == []


async def test_a_consent_route_reads_its_path_parameter_through_the_surface(
    harness: Harness,
) -> None:
    """Found by the run above: the surface did not hand route parameters over."""
    key = add_key(
        harness.node.deployment.path("admin_keys.json"), Role.SECURITY_OFFICER
    )
    url = f"{harness.demo.mediator_url}/admin/api/v1/consents/no-such-consent/history"

    answer = await harness.http.get(url, headers={"authorization": f"ApiKey {key[1]}"})

    assert answer.status_code == 404
