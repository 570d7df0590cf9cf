"""Metaservices: listClients, listMethods, allowedMethods and getOpenAPI."""

from __future__ import annotations

from xml.etree import ElementTree as ET

import httpx
import pytest

from gateway.identifiers import ClientId, ServiceId
from gateway.metaservices import ID_NS, XROAD_NS, metaservice_of, xroad_path
from tests.gateway.conftest import KANYASHREE, SABOOJSATHI, Harness

pytestmark = pytest.mark.anyio

PROVIDER = ClientId("WB", "GOV", "SED", "banglarshiksha")


def _meta(code: str) -> ServiceId:
    return ServiceId(PROVIDER, code)


async def _list_clients(
    harness: Harness,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    client = harness.client(KANYASHREE)
    return await harness.http.get(
        f"{harness.demo.mediator_url}/listClients",
        params=query,
        headers={
            "authorization": f"Bearer {client.assertion()}",
            "x-road-client": str(KANYASHREE),
            **(headers or {}),
        },
    )


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (b"/listClients", "listClients"),
        (b"/r1/listClients", "listClients"),
        (b"/r1/WB/GOV/SED/banglarshiksha/listMethods", "listMethods"),
        (b"/r1/WB/GOV/SED/banglarshiksha/allowedMethods", "allowedMethods"),
        (b"/r1/WB/GOV/SED/banglarshiksha/getOpenAPI", "getOpenAPI"),
        (b"/r1/WB/GOV/SED/banglarshiksha/students", None),
        (b"/r1/WB/GOV/SED/banglarshiksha/listMethods/x", None),
        (b"/listClients/", None),
    ],
)
def test_metaservice_paths_are_recognised_exactly(
    path: bytes, expected: str | None
) -> None:
    assert metaservice_of(path) == expected


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [("/", "/"), ("/{udise_code}", "/*"), ("/a/{x}/b/**", "/a/*/b/**")],
)
def test_access_patterns_use_xroad_wildcards(pattern: str, expected: str) -> None:
    assert xroad_path(pattern) == expected


async def test_list_clients_lists_members_and_subsystems(harness: Harness) -> None:
    answer = await _list_clients(harness)

    assert answer.status_code == 200
    assert "signature" in answer.headers
    ids = [m["id"] for m in answer.json()["member"]]
    assert {
        "member_class": "GOV",
        "member_code": "WCD",
        "object_type": "SUBSYSTEM",
        "subsystem_code": "kanyashree",
        "xroad_instance": "WB",
    } in ids
    assert any(i["object_type"] == "MEMBER" for i in ids)


async def test_list_clients_of_another_instance_is_empty(harness: Harness) -> None:
    answer = await _list_clients(harness, query={"xRoadInstance": "EE"})

    assert answer.json() == {"member": []}


async def test_list_clients_answers_xml_when_asked(harness: Harness) -> None:
    answer = await _list_clients(harness, headers={"accept": "text/xml"})

    assert answer.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(answer.content)
    assert root.tag == f"{{{XROAD_NS}}}clientList"
    codes = [e.text for e in root.iter(f"{{{ID_NS}}}subsystemCode")]
    assert "kanyashree" in codes


async def test_list_methods_lists_every_service_of_the_provider(
    harness: Harness,
) -> None:
    answer = await harness.client(KANYASHREE).call("GET", _meta("listMethods"))

    services = {s["service_code"]: s for s in answer.json()["service"]}
    assert set(services) == {"students", "schools"}
    assert services["schools"]["service_type"] == "OPENAPI"
    assert {"method": "GET", "path": "/*"} in services["schools"]["endpoint_list"]


async def test_allowed_methods_lists_only_the_callers_rights(harness: Harness) -> None:
    answer = await harness.client(KANYASHREE).call("GET", _meta("allowedMethods"))

    services = answer.json()["service"]
    assert [s["service_code"] for s in services] == ["students"]
    assert services[0]["endpoint_list"] == [
        {"method": "GET", "path": "/applicants/*/enrolment"},
        {"method": "POST", "path": "/verify-enrolment"},
    ]


async def test_allowed_methods_differ_per_client(harness: Harness) -> None:
    answer = await harness.client(SABOOJSATHI).call("GET", _meta("allowedMethods"))

    assert {s["service_code"] for s in answer.json()["service"]} == {
        "students",
        "schools",
    }


async def test_get_openapi_names_the_node_not_the_provider(harness: Harness) -> None:
    answer = await harness.client(KANYASHREE).call(
        "GET", _meta("getOpenAPI"), query={"serviceCode": "students"}
    )

    document = answer.json()
    public = harness.node.deployment.settings.public_url
    assert answer.status == 200
    assert document["servers"] == [
        {"url": f"{str(public).rstrip('/')}/r1/WB/GOV/SED/banglarshiksha/students"}
    ]
    assert "8701" not in answer.body.decode()
    assert "/verify-enrolment" in document["paths"]


@pytest.mark.parametrize(
    ("query", "status", "error"),
    [
        ({}, 400, "Client.invalid_query"),
        ({"serviceCode": "nothing"}, 404, "Client.unknown_service"),
        ({"serviceCode": "a/b"}, 400, "Client.invalid_query"),
    ],
)
async def test_get_openapi_refuses_a_missing_or_unknown_service(
    harness: Harness, query: dict[str, str], status: int, error: str
) -> None:
    answer = await harness.client(KANYASHREE).call(
        "GET", _meta("getOpenAPI"), query=query
    )

    assert (answer.status, answer.error_type) == (status, error)


async def test_metaservices_need_a_credential(harness: Harness) -> None:
    answer = await harness.http.get(
        f"{harness.demo.mediator_url}/r1/WB/GOV/SED/banglarshiksha/listMethods"
    )

    assert answer.status_code == 401
    assert answer.headers["x-road-error"] == "Client.missing_credential"


async def test_each_metaservice_call_is_logged_once(harness: Harness) -> None:
    client = harness.client(KANYASHREE)
    await client.call("GET", _meta("listMethods"))
    await _list_clients(harness)

    records = await harness.records()

    assert [(r["decision"], r["service_id"]) for r in records] == [
        ("served", "WB/GOV/SED/banglarshiksha/listMethods"),
        ("served", "WB/GOV/SED/mediator-1/listClients"),
    ]
    assert all(r["client_id"] == str(KANYASHREE) for r in records)


async def test_a_metaservice_answers_only_get_and_head(harness: Harness) -> None:
    client = harness.client(KANYASHREE)

    answer = await harness.http.post(
        f"{harness.demo.mediator_url}/listClients",
        headers={
            "authorization": f"Bearer {client.assertion()}",
            "x-road-client": str(KANYASHREE),
            "content-type": "application/json",
        },
        content=b"{}",
    )

    assert answer.status_code == 405
    assert answer.headers["x-road-error"] == "Client.method_not_allowed"
    assert answer.headers["allow"] == "GET, HEAD"
