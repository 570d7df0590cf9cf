"""Names on the wire, and which headers may cross the node in each direction."""

from __future__ import annotations

import pytest

from gateway import wire

NAMES = [
    wire.XROAD_CLIENT,
    wire.XROAD_ID,
    wire.XROAD_REQUEST_ID,
    wire.XROAD_REQUEST_HASH,
    wire.XROAD_SERVICE,
    wire.XROAD_ERROR,
    wire.XROAD_USER_ID,
    wire.XROAD_ISSUE,
    wire.PURPOSE,
    wire.PURPOSE_FORWARDED,
    wire.AUTHORIZATION,
    wire.CONTENT_TYPE,
    wire.CONTENT_LENGTH,
    wire.CONTENT_DIGEST,
    wire.SIGNATURE,
    wire.SIGNATURE_INPUT,
    *wire.HOP_BY_HOP,
    *wire.FORWARDED_REQUEST_HEADERS,
    *wire.FORWARDED_RESPONSE_HEADERS,
]


@pytest.mark.parametrize("name", NAMES)
def test_a_header_name_is_lower_case(name: str) -> None:
    """Starlette and httpx compare names in lower case, so a capital never matches."""
    assert name == name.lower()


@pytest.mark.parametrize(
    "name",
    [
        "authorization",
        "proxy-authorization",
        "cookie",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-real-ip",
        "forwarded",
        "host",
        wire.SIGNATURE,
        wire.SIGNATURE_INPUT,
        wire.CONTENT_DIGEST,
        wire.PURPOSE,
        wire.PURPOSE_FORWARDED,
        wire.XROAD_SERVICE,
        wire.XROAD_REQUEST_HASH,
    ],
)
def test_credentials_claims_and_node_headers_stay_at_the_node(name: str) -> None:
    """No client credential, forwarding claim, client signature, or header the
    node writes itself towards the provider is copied from the request."""
    assert name not in wire.FORWARDED_REQUEST_HEADERS


@pytest.mark.parametrize(
    "name",
    [
        "set-cookie",
        "location",
        "server",
        "x-powered-by",
        "www-authenticate",
        wire.SIGNATURE,
        wire.SIGNATURE_INPUT,
        wire.CONTENT_DIGEST,
        wire.CONTENT_LENGTH,
    ],
)
def test_provider_headers_that_leak_or_bind_stay_at_the_node(name: str) -> None:
    """A provider's cookies, internal addresses, software banner and its own
    signature never reach the client: the node signs and frames its answer."""
    assert name not in wire.FORWARDED_RESPONSE_HEADERS


@pytest.mark.parametrize(
    "headers", [wire.FORWARDED_REQUEST_HEADERS, wire.FORWARDED_RESPONSE_HEADERS]
)
def test_no_forwarded_header_is_hop_by_hop(headers: frozenset[str]) -> None:
    """RFC 9110 section 7.6.1: a hop-by-hop or framing header is never copied."""
    assert headers.isdisjoint(wire.HOP_BY_HOP)


def test_the_client_side_x_road_headers_are_forwarded() -> None:
    """The X-Road REST headers that describe the client's request go through."""
    assert {
        wire.XROAD_CLIENT,
        wire.XROAD_ID,
        wire.XROAD_REQUEST_ID,
        wire.XROAD_USER_ID,
        wire.XROAD_ISSUE,
    } <= wire.FORWARDED_REQUEST_HEADERS
