"""schemathesis against the registry's and the admin API's OpenAPI documents.

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

from gateway.admin.auth import ADMIN_ROLES, Role, add_key
from registry_stub.app import create_app as create_registry
from tests.gateway.conftest import Harness

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
