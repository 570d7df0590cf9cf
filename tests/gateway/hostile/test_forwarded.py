"""C14, C16 and C19 leftovers: forwarded-header spoofing, the address the node
decides on, what the provider is told, and what a 413 record says.

The client address is the ASGI scope's peer unless that peer is a trusted proxy;
rate limits are keyed by the authenticated client, never by an address."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from gateway.clientip import client_address
from gateway.errors import ConfigError
from gateway.settings import NodeSettings
from policies.access import AccessPolicy
from tests.gateway.conftest import Harness
from tests.gateway.hostile.support import (
    SCHOOLS,
    asgi,
    outcome,
    provider,
    route_to,
    send,
    signed_answer,
)

pytestmark = pytest.mark.anyio

ROOT = f"/{SCHOOLS}"
RULE = "saboojsathi-schools"
PROXY = "10.0.0.5"
OUTSIDER = "203.0.113.50"
SCHOOL = b'{"udise_code":"19110900503","name":"Sample School"}'


def _change_rule(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, **change: Any
) -> None:
    """Swap in the access policy with the schools right changed."""
    pipeline = harness.node.pipeline
    policies = pipeline._policies
    endpoints = [
        dataclasses.replace(e, rule=dataclasses.replace(e.rule, **change))
        if e.rule.id == RULE
        else e
        for e in policies.access._endpoints
    ]
    fresh = dataclasses.replace(policies, access=AccessPolicy(endpoints))
    monkeypatch.setattr(pipeline, "_policies", fresh)


def _school(harness: Harness) -> str:
    """The path of a school the seeded registry has."""
    from registry_stub.seed import sample_students

    (student,) = sample_students(harness.demo.registry_db, limit=1)
    return f"{ROOT}/{student['udise_code']}"


def _trust(harness: Harness, monkeypatch: pytest.MonkeyPatch, *proxies: str) -> None:
    deployment = harness.node.deployment
    settings = deployment.settings.model_copy(update={"trusted_proxies": proxies})
    monkeypatch.setattr(
        harness.node, "deployment", dataclasses.replace(deployment, settings=settings)
    )


def _allow_only(harness: Harness, monkeypatch: pytest.MonkeyPatch, cidr: str) -> None:
    from gateway.clientip import parse_networks

    _change_rule(harness, monkeypatch, source_ips=parse_networks([cidr]))


# -- the address the node decides on ---------------------------------------------


@pytest.mark.parametrize(
    ("peer", "xff", "trusted", "expected"),
    [
        (OUTSIDER, ["10.20.0.9"], (PROXY,), OUTSIDER),
        (OUTSIDER, [], (), OUTSIDER),
        (PROXY, ["10.20.0.9"], (PROXY,), "10.20.0.9"),
        (PROXY, ["10.20.0.9, 198.51.100.7"], (PROXY,), "198.51.100.7"),
        (PROXY, ["10.20.0.9", "198.51.100.7"], (PROXY,), "198.51.100.7"),
        (PROXY, ["198.51.100.7, 10.0.0.6"], ("10.0.0.0/24",), "198.51.100.7"),
        (PROXY, ["10.0.0.7, 10.0.0.6"], ("10.0.0.0/24",), "10.0.0.7"),
        (PROXY, ["10.20.0.9, not-an-ip"], (PROXY,), PROXY),
        (PROXY, [], (PROXY,), PROXY),
        ("::ffff:10.20.0.9", [], (), "10.20.0.9"),
        (PROXY, ["::ffff:10.20.0.9"], (PROXY,), "10.20.0.9"),
        ("::1", ["10.20.0.9"], (), "::1"),
    ],
)
def test_client_address_is_the_peer_unless_a_trusted_proxy_says(
    peer: str, xff: list[str], trusted: tuple[str, ...], expected: str
) -> None:
    assert client_address(peer, xff, trusted).ip == expected


def test_claimed_forwarded_for_is_escaped_and_masked() -> None:
    claimed = client_address(OUTSIDER, ["10.20.0.9,\x85 999901234563"], ()).claimed

    assert claimed == "10.20.0.9,\\u0085 [redacted]"


@pytest.mark.parametrize("entry", ["10.0.0.300", "proxy.example", "10.0.0.0/33"])
def test_a_malformed_trusted_proxy_is_a_config_error(entry: str) -> None:
    with pytest.raises(ValueError, match="trusted_proxies"):
        NodeSettings.model_validate(
            {
                "node_id": "n",
                "public_url": "https://gw.example",
                "allowed_hosts": ["gw.example"],
                "auth": {"audience": "a"},
                "trusted_proxies": [entry],
            }
        )


def test_a_malformed_source_ip_is_a_config_error_with_its_line(tmp_path: Any) -> None:
    path = tmp_path / "access.yaml"
    path.write_text(
        "rights:\n"
        "  - id: r\n"
        "    service: WB/GOV/SED/banglarshiksha/schools\n"
        "    client: WB/GOV/BCW/saboojsathi\n"
        "    endpoints: [{method: GET, path: /}]\n"
        "    source_ips: [10.20.0.0/99]\n"
    )

    with pytest.raises(ConfigError, match="source_ips") as caught:
        AccessPolicy.load(path, ())

    assert caught.value.line is not None


# -- C14 end to end ---------------------------------------------------------------

SPOOFS = [
    {"x-forwarded-for": "10.20.0.{n}"},
    {"x-real-ip": "10.20.0.{n}"},
    {"forwarded": "for=10.20.0.{n}"},
    {"X-FORWARDED-FOR": "10.20.0.{n}"},
    {"x-forwarded-for": "::ffff:10.20.0.{n}"},
]


async def test_spoofed_addresses_never_buy_a_fresh_bucket(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    _change_rule(harness, monkeypatch, rate="5/minute")

    statuses = []
    for n in range(20):
        spoof = SPOOFS[n % len(SPOOFS)]
        headers = {k: v.format(n=n) for k, v in spoof.items()}
        reply = await send(
            harness, "GET", _school(harness), headers=headers, peer=OUTSIDER
        )
        statuses.append(reply.status_code)
        if reply.status_code == 429:
            assert int(reply.headers["retry-after"]) >= 1

    assert statuses[:5] == [200] * 5
    assert statuses[5:] == [429] * 15


async def test_two_forwarded_for_lines_share_the_bucket(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    _change_rule(harness, monkeypatch, rate="2/minute")
    items = [("x-forwarded-for", "10.20.0.1"), ("x-forwarded-for", "10.20.0.2")]

    statuses = []
    for _ in range(3):
        fields = [*_auth(harness), *items]
        reply = await asgi(
            harness, "GET", f"/r1{_school(harness)}".encode(), fields, b""
        )
        statuses.append(reply.status_code)

    assert statuses == [200, 200, 429]


def _auth(harness: Harness) -> list[tuple[str, str]]:
    from tests.gateway.hostile.support import SABOOJSATHI, auth_headers

    host = ("host", harness.demo.mediator_url.split("//", 1)[1].rstrip("/"))
    return [host, *auth_headers(harness, SABOOJSATHI).items()]


@pytest.mark.parametrize(
    ("peer", "xff", "status"),
    [
        (OUTSIDER, "10.20.0.9", 403),
        ("10.20.0.9", None, 200),
        ("::ffff:10.20.0.9", None, 200),
        (PROXY, "10.20.0.9", 200),
        (PROXY, "10.20.0.9, 203.0.113.50", 403),
        (PROXY, None, 403),
    ],
)
async def test_the_ip_allow_list_sees_only_the_decided_address(
    harness: Harness,
    monkeypatch: pytest.MonkeyPatch,
    peer: str,
    xff: str | None,
    status: int,
) -> None:
    _trust(harness, monkeypatch, PROXY)
    _allow_only(harness, monkeypatch, "10.20.0.0/16")
    headers = {} if xff is None else {"x-forwarded-for": xff}

    reply = await send(harness, "GET", _school(harness), headers=headers, peer=peer)

    assert reply.status_code == status
    (record,) = await harness.exchanges()
    if status == 403:
        assert record["reason"] == "source_ip_not_allowed"
        assert record["upstream_called"] is False


async def test_the_record_keeps_peer_decided_address_and_claim_apart(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    _trust(harness, monkeypatch, PROXY)

    await send(
        harness,
        "GET",
        _school(harness),
        headers={"x-forwarded-for": "1.2.3.4"},
        peer=PROXY,
    )
    await send(harness, "GET", _school(harness), headers={"x-forwarded-for": "1.2.3.4"})

    first, second = await harness.exchanges()
    assert (first["peer"], first["client_ip"]) == (PROXY, "1.2.3.4")
    assert first["claimed_forwarded_for"] == "1.2.3.4"
    assert (second["peer"], second["client_ip"]) == ("127.0.0.1", "127.0.0.1")
    assert second["claimed_forwarded_for"] == "1.2.3.4"


async def test_the_provider_hears_only_the_address_the_node_built(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """C14/C16: no client X-Real-IP, Forwarded or X-Forwarded-* reaches the
    provider; the node's own X-Forwarded-For names the decided address; a
    provider's Location (which names its internal address) never reaches the
    client."""
    key = harness.demo.registry_key
    assert key is not None

    async def script(request: bytes, writer: asyncio.StreamWriter) -> None:
        location = {"location": "http://10.9.9.9:8000/api/schools/x"}
        writer.write(signed_answer(key, 200, SCHOOL, headers=location))
        await writer.drain()

    spoof = {
        "x-forwarded-for": "10.20.0.9",
        "x-real-ip": "10.20.0.9",
        "forwarded": "for=10.20.0.9;proto=http;host=attacker.example",
        "x-forwarded-host": "attacker.example",
        "x-forwarded-proto": "http",
    }
    async with provider(script) as fake:
        route_to(harness, monkeypatch, fake.port)
        reply = await send(
            harness, "GET", _school(harness), headers=spoof, peer=OUTSIDER
        )

    assert reply.status_code == 200
    assert "location" not in reply.headers
    (head,) = fake.requests
    lines = [line.lower() for line in head.split(b"\r\n")]
    assert f"x-forwarded-for: {OUTSIDER}".encode() in lines
    for name in (b"x-real-ip", b"forwarded", b"x-forwarded-host", b"x-forwarded-proto"):
        assert not any(line.startswith(name + b":") for line in lines)
    assert b"attacker.example" not in head


# -- C19: what a 413 record says ---------------------------------------------------


async def test_a_declared_oversize_is_recorded_with_nothing_read(
    harness: Harness,
) -> None:
    headers = {"content-length": "52428800", "content-type": "application/json"}

    reply = await send(harness, "POST", ROOT, headers=headers, body=b"[1]")

    assert reply.status_code == 413
    (record,) = await harness.exchanges()
    assert (record["declared_length"], record["request_bytes"]) == (52428800, 0)
    assert record["reason"] == "declared_too_large"


async def test_an_undeclared_oversize_is_recorded_with_the_bytes_read(
    harness: Harness,
) -> None:
    cap = harness.node.deployment.settings.limits.max_body_bytes
    fields = [*_auth(harness), ("transfer-encoding", "chunked")]

    reply = await asgi(harness, "POST", f"/r1{ROOT}".encode(), fields, b"x" * (cap + 1))

    assert reply.status_code == 413
    (record,) = await harness.exchanges()
    assert record["declared_length"] is None
    assert record["request_bytes"] == cap + 1
    assert record["request_body_sha256"] is None


async def test_a_non_ascii_forwarded_header_is_refused_not_transcoded(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """X-Road-UserId is forwarded (gateway.wire). The node reads header bytes as
    ISO-8859-1 and its provider client writes them as UTF-8, so a value with
    bytes over 0x7F (here the UTF-8 of "EEé") reaches the provider transcoded a
    second time ("EEÃ\\x83Â©"): the person named is not the one the client
    named. The node refuses such a value instead, before anything is sent."""
    key = harness.demo.registry_key
    assert key is not None

    async def script(_request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(signed_answer(key, 200, SCHOOL))
        await writer.drain()

    sent = "EE\u00e9".encode().decode("latin-1")  # the raw bytes 45 45 c3 a9
    async with provider(script) as fake:
        route_to(harness, monkeypatch, fake.port)
        reply = await send(
            harness,
            "GET",
            f"/{SCHOOLS}/19110900503",
            headers={"x-road-userid": sent},
        )

    assert reply.status_code == 400
    assert reply.headers["x-road-error"] == "Client.invalid_header"
    assert fake.requests == []
    record = await outcome(harness, reply)
    assert (record["reason"], record["upstream_called"]) == ("non_ascii_header", False)
