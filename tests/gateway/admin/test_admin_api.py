"""The admin API: credentials, roles, maintenance, monitoring, metrics, audit."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from jwt.algorithms import OKPAlgorithm

from gateway.admin.auth import Role, add_key, key_hash, match_key, read_keys
from gateway.admin.surface import AdminLimiter
from gateway.audit import AuditLog
from gateway.identifiers import ClientId, ServiceId
from tests.gateway.conftest import KANYASHREE, SABOOJSATHI, Harness

pytestmark = pytest.mark.anyio

API = "/admin/api/v1"
SCHOOLS = ServiceId(ClientId("WB", "GOV", "SED", "banglarshiksha"), "schools")


def _key(harness: Harness, role: Role) -> str:
    path = harness.node.deployment.path("admin_keys.json")
    return add_key(path, role)[1]


async def _get(harness: Harness, path: str, key: str | None, **params: Any) -> Any:
    headers = {"authorization": f"ApiKey {key}"} if key else {}
    return await harness.http.get(
        f"{harness.demo.mediator_url}{path}", headers=headers, params=params or None
    )


async def _post(harness: Harness, path: str, key: str, body: Any) -> httpx.Response:
    return await harness.http.post(
        f"{harness.demo.mediator_url}{path}",
        headers={"authorization": f"ApiKey {key}"},
        json=body,
    )


def test_api_keys_are_stored_as_hashes_only(tmp_path: Any) -> None:
    stored, key = add_key(tmp_path / "keys.json", Role.OPS)

    text = (tmp_path / "keys.json").read_text()
    assert key not in text
    assert stored.sha256 == key_hash(key)
    assert stored.sha256 in text
    assert (tmp_path / "keys.json").stat().st_mode & 0o077 == 0
    assert match_key(key, read_keys(tmp_path / "keys.json")) == stored
    assert match_key(key + "x", read_keys(tmp_path / "keys.json")) is None


async def test_health_for_load_balancers_needs_no_credential(harness: Harness) -> None:
    answer = await _get(harness, "/admin/health", None)

    assert answer.status_code == 200
    assert answer.json()["checks"] == {"log": True, "signing_key": True, "config": True}
    assert answer.json()["shared_state"] == "this node only"


@pytest.mark.parametrize("credential", [None, "ApiKey mak_nothing", "Basic eDp5"])
async def test_the_api_refuses_a_missing_or_wrong_credential(
    harness: Harness, credential: str | None
) -> None:
    headers = {"authorization": credential} if credential else {}
    answer = await harness.http.get(
        f"{harness.demo.mediator_url}{API}/environment", headers=headers
    )

    assert answer.status_code == 401


@pytest.mark.parametrize(
    ("role", "method", "path", "status"),
    [
        (Role.INTEGRATOR, "POST", f"{API}/maintenance", 403),
        (Role.OPS, "GET", f"{API}/log/search", 403),
        (Role.SECURITY_OFFICER, "GET", f"{API}/log/search", 200),
        (Role.INTEGRATOR, "GET", "/admin/metrics", 403),
        (Role.OPS, "GET", "/admin/metrics", 200),
        (Role.OPS, "GET", f"{API}/nothing", 404),
        (Role.OPS, "DELETE", f"{API}/keys", 405),
    ],
)
async def test_roles_decide_what_a_caller_may_do(
    harness: Harness, role: Role, method: str, path: str, status: int
) -> None:
    key = _key(harness, role)
    answer = await harness.http.request(
        method,
        f"{harness.demo.mediator_url}{path}",
        headers={"authorization": f"ApiKey {key}"},
        json={"maintenance": False} if method == "POST" else None,
    )

    assert answer.status_code == status


async def test_environment_facts_name_versions_and_disk(harness: Harness) -> None:
    answer = await _get(harness, f"{API}/environment", _key(harness, Role.OPS))

    facts = answer.json()
    assert facts["cpu_count"] >= 1
    assert facts["log_store"]["disk_free_bytes"] > 0
    assert facts["libraries"]["starlette"]


async def test_maintenance_answers_503_and_is_audited(harness: Harness) -> None:
    key = _key(harness, Role.OPS)
    turned_on = await _post(harness, f"{API}/maintenance", key, {"maintenance": True})
    during = await harness.client(SABOOJSATHI).call(
        "GET", SCHOOLS, "/", query={"district": "Nadia"}
    )
    await _post(harness, f"{API}/maintenance", key, {"maintenance": False})
    after = await harness.client(SABOOJSATHI).call(
        "GET", SCHOOLS, "/", query={"district": "Nadia"}
    )

    assert turned_on.json()["maintenance"] is True
    assert (during.status, during.error_type) == (503, "Server.Mediator.maintenance")
    assert after.status == 200
    audit = AuditLog.in_state_dir(harness.node.state_dir)
    assert audit.verify() >= 2
    actions = [(e.action, e.details) for e in audit.entries()][-2:]
    assert actions == [
        ("maintenance.set", {"maintenance": True}),
        ("maintenance.set", {"maintenance": False}),
    ]


async def test_health_reports_maintenance_to_load_balancers(harness: Harness) -> None:
    harness.node.ops.maintenance.set(True, "test")
    harness.node.ops.health = type(harness.node.ops.health)(0)

    answer = await _get(harness, "/admin/health", None)

    assert (answer.status_code, answer.json()["status"]) == (503, "maintenance")


async def test_opmonitoring_has_one_record_per_exchange(harness: Harness) -> None:
    await harness.client(SABOOJSATHI).call(
        "GET", SCHOOLS, "/", query={"district": "Nadia"}
    )
    await harness.client(KANYASHREE).call(
        "GET", SCHOOLS, "/", query={"district": "Nadia"}
    )
    await harness.node.ops.monitor.flush()

    answer = await _get(harness, f"{API}/opmonitoring", _key(harness, Role.OPS))

    records = answer.json()["records"]
    assert [(r["client_id"], r["decision"]) for r in records] == [
        (str(SABOOJSATHI), "forwarded"),
        (str(KANYASHREE), "denied"),
    ]
    first = records[0]
    assert first["succeeded"] is True
    assert first["fault_code"] is None
    assert first["rule_id"] == "saboojsathi-schools"
    assert "authenticate" in first["steps_ms"]
    assert "path" not in first
    assert records[1]["fault_code"] == "no_matching_rule"
    assert records[1]["response_size"] > 0
    assert records[1]["status"] == 403


async def test_opmonitoring_pages_through_a_window(harness: Harness) -> None:
    for _ in range(3):
        await harness.client(SABOOJSATHI).call(
            "GET", SCHOOLS, "/", query={"district": "Nadia"}
        )
    await harness.node.ops.monitor.flush()
    key = _key(harness, Role.OPS)

    first = (await _get(harness, f"{API}/opmonitoring", key, limit=2)).json()
    rest = (
        await _get(
            harness, f"{API}/opmonitoring", key, limit=2, after=first["next_after"]
        )
    ).json()

    assert (len(first["records"]), len(rest["records"])) == (2, 1)
    assert first["next_after"] is not None
    assert rest["next_after"] is None
    empty = await _get(harness, f"{API}/opmonitoring", key, until=time.time() - 3600)
    assert empty.json()["records"] == []


async def test_a_client_sees_only_its_own_monitoring_records(
    harness: Harness,
) -> None:
    await harness.client(SABOOJSATHI).call(
        "GET", SCHOOLS, "/", query={"district": "Nadia"}
    )
    await harness.client(KANYASHREE).call(
        "GET", SCHOOLS, "/", query={"district": "Nadia"}
    )
    await harness.node.ops.monitor.flush()
    client = harness.client(KANYASHREE)

    answer = await harness.http.get(
        f"{harness.demo.mediator_url}{API}/opmonitoring",
        params={"client_id": str(SABOOJSATHI)},
        headers={
            "authorization": f"Bearer {client.assertion()}",
            "x-road-client": str(KANYASHREE),
        },
    )

    assert {r["client_id"] for r in answer.json()["records"]} == {str(KANYASHREE)}


async def test_a_client_may_not_use_other_admin_endpoints(harness: Harness) -> None:
    client = harness.client(KANYASHREE)
    answer = await harness.http.get(
        f"{harness.demo.mediator_url}{API}/keys",
        headers={
            "authorization": f"Bearer {client.assertion()}",
            "x-road-client": str(KANYASHREE),
        },
    )

    assert answer.status_code == 403


async def test_an_admin_jwt_signed_by_a_listed_key_is_accepted(
    harness: Harness,
) -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    jwk = OKPAlgorithm.to_jwk(private.public_key(), as_dict=True)
    jwk.update({"kid": "alice-1", "alg": "EdDSA"})
    admins = harness.demo.config_dir / "admins.yaml"
    admins.write_text(
        "admins:\n  - id: alice\n    role: security_officer\n"
        f"    jwk: {dict(jwk)!r}\n".replace("'", '"')
    )
    from gateway.admin.auth import load_admins

    harness.node.ops.admin_auth._admins = load_admins(admins)
    now = int(time.time())
    audience = f"{harness.demo.audience}/admin"
    claims = {
        "iss": "alice",
        "sub": "alice",
        "aud": audience,
        "iat": now,
        "exp": now + 60,
    }
    token = jwt.encode(claims, private, algorithm="EdDSA", headers={"kid": "alice-1"})
    wrong = jwt.encode(
        {**claims, "aud": harness.demo.audience},
        private,
        algorithm="EdDSA",
        headers={"kid": "alice-1"},
    )

    def headers(t: str) -> dict[str, str]:
        return {"authorization": f"Bearer {t}"}

    url = f"{harness.demo.mediator_url}{API}/log/search"
    ok = await harness.http.get(url, headers=headers(token))
    refused = await harness.http.get(url, headers=headers(wrong))

    assert ok.status_code == 200
    assert refused.status_code == 401


async def test_the_security_officer_verifies_the_log(harness: Harness) -> None:
    await harness.client(SABOOJSATHI).call(
        "GET", SCHOOLS, "/", query={"district": "Nadia"}
    )
    key = _key(harness, Role.SECURITY_OFFICER)

    answer = await _post(harness, f"{API}/log/verify", key, None)

    assert answer.json()["ok"] is True
    assert answer.json()["records"] >= 1


async def test_keys_are_listed_public_facts_only(harness: Harness) -> None:
    answer = await _get(harness, f"{API}/keys", _key(harness, Role.INTEGRATOR))

    [key] = answer.json()["keys"]
    assert key["state"] == "active"
    assert 364 < key["days_to_expiry"] <= 365
    assert set(key) >= {"kid", "algorithm", "age_days"}


async def test_metrics_count_exchanges_and_key_expiry(harness: Harness) -> None:
    await harness.client(SABOOJSATHI).call(
        "GET", SCHOOLS, "/", query={"district": "Nadia"}
    )

    answer = await _get(harness, "/admin/metrics", _key(harness, Role.OPS))

    text = answer.text
    assert (
        'mediator_exchanges_total{client="WB/GOV/BCW/saboojsathi",decision="forwarded",'
        'service="WB/GOV/SED/banglarshiksha/schools",status="'
    ) in text
    assert "mediator_step_duration_seconds_bucket" in text
    assert "mediator_key_days_to_expiry" in text
    assert "mediator_log_unsealed_records" in text


async def test_the_admin_rate_limit_is_per_identity(harness: Harness) -> None:
    harness.node.ops.admin_limiter = AdminLimiter("2/minute")
    key, other = _key(harness, Role.OPS), _key(harness, Role.OPS)

    statuses = [(await _get(harness, f"{API}/keys", key)).status_code for _ in range(3)]
    others = (await _get(harness, f"{API}/keys", other)).status_code

    assert (statuses, others) == ([200, 200, 429], 200)


async def test_the_openapi_document_lists_every_route(harness: Harness) -> None:
    answer = await _get(harness, f"{API}/openapi.json", None)

    paths = answer.json()["paths"]
    assert paths[f"{API}/maintenance"]["post"]["x-roles"] == ["ops"]
    assert f"{API}/opmonitoring" in paths


async def test_the_dashboard_data_counts_traffic_and_denials(harness: Harness) -> None:
    await harness.client(SABOOJSATHI).call(
        "GET", SCHOOLS, "/", query={"district": "Nadia"}
    )
    await harness.client(KANYASHREE).call(
        "GET", SCHOOLS, "/", query={"district": "Nadia"}
    )

    answer = await _get(harness, f"{API}/dashboard", _key(harness, Role.OPS))

    data = answer.json()
    assert data["exchanges"] == 2
    assert data["denials"] == [{"reason": "no_matching_rule", "count": 1}]
    assert data["latency_ms"]["p50"] is not None
    assert data["log"]["records"] == 3  # request and response, and the denial


async def test_a_consent_refusal_is_an_x_road_error_naming_the_field(
    harness: Harness,
) -> None:
    """The consent API answers as the rest of the surface: type, message, detail."""
    key = _key(harness, Role.SECURITY_OFFICER)

    answer = await _post(harness, f"{API}/consents/search", key, {"limit": 5})

    assert answer.status_code == 422
    assert answer.headers["x-road-error"] == "Client.invalid_field"
    assert answer.json() == {
        "type": "Client.invalid_field",
        "message": "A field is missing or not valid",
        "detail": "subject",
    }


@pytest.mark.parametrize(
    "path",
    [
        "/admin/health",
        "/admin/metrics",
        f"{API}/openapi.json",
        "/admin/dashboard/",
        "/admin/dashboard/dashboard.js",
    ],
)
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
async def test_the_read_only_pages_answer_only_get_and_head(
    harness: Harness, path: str, method: str
) -> None:
    answer = await harness.http.request(method, f"{harness.demo.mediator_url}{path}")

    assert answer.status_code == 405
    assert answer.headers["x-road-error"] == "Client.method_not_allowed"
    assert answer.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    "framing",
    [{"content-length": "2"}, {"transfer-encoding": "chunked"}],
    ids=["content-length", "chunked"],
)
async def test_a_get_with_a_body_is_refused_as_on_the_exchange_surface(
    harness: Harness, framing: dict[str, str]
) -> None:
    key = _key(harness, Role.OPS)
    headers = {"authorization": f"ApiKey {key}", **framing}

    answer = await harness.http.request(
        "GET",
        f"{harness.demo.mediator_url}{API}/maintenance",
        headers=headers,
        content=b"{}",
    )

    assert answer.status_code == 400
    assert answer.headers["x-road-error"] == "Client.body_not_allowed"


async def test_a_405_on_an_api_path_names_the_methods_it_serves(
    harness: Harness,
) -> None:
    key = _key(harness, Role.OPS)

    answer = await harness.http.request(
        "DELETE",
        f"{harness.demo.mediator_url}{API}/maintenance",
        headers={"authorization": f"ApiKey {key}"},
    )

    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET, HEAD, POST"


async def test_a_refused_frame_closes_the_admin_connection(harness: Harness) -> None:
    """As on the exchange surface: nothing behind a refused frame is parsed."""
    key = _key(harness, Role.OPS)

    answer = await harness.http.request(
        "GET",
        f"{harness.demo.mediator_url}{API}/maintenance",
        headers={"authorization": f"ApiKey {key}", "content-length": "2"},
        content=b"{}",
    )

    assert answer.status_code == 400
    assert answer.headers["connection"] == "close"


@pytest.mark.parametrize("path", [f"{API}/maintenance", f"{API}/consents/search"])
async def test_two_media_types_for_one_admin_body_are_refused(
    harness: Harness, path: str
) -> None:
    """Which of two a reader takes would be a guess, as on the exchange surface."""
    key = _key(harness, Role.OPS if "maintenance" in path else Role.SECURITY_OFFICER)

    answer = await harness.http.post(
        f"{harness.demo.mediator_url}{path}",
        headers=[
            ("authorization", f"ApiKey {key}"),
            ("content-type", "application/json"),
            ("content-type", "text/plain"),
        ],
        content=b'{"maintenance": true}',
    )

    assert answer.status_code == 400
    assert answer.headers["x-road-error"] == "Client.invalid_header"
