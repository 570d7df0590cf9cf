"""The client address (C14): the peer's, or what a trusted proxy forwarded."""

from __future__ import annotations

import ipaddress

import pytest

from gateway.clientip import (
    CLAIM_LIMIT,
    allowed_from,
    client_address,
    parse_address,
    parse_networks,
    within,
)
from gateway.logsafe import TRUNCATED

PROXY = "10.0.0.5"
PROXIES = ("10.0.0.0/29",)
CAMPUS = parse_networks(["10.20.0.0/16", "2001:db8:20::/48"])


# -- addresses and networks -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.20.0.9", "10.20.0.9"),
        (" 10.20.0.9 ", "10.20.0.9"),
        ("::ffff:10.20.0.9", "10.20.0.9"),
        ("2001:db8:20::7", "2001:db8:20::7"),
        ("2001:DB8:20:0::7", "2001:db8:20::7"),
        ("::1", "::1"),
    ],
)
def test_an_address_is_read_in_one_canonical_form(text: str, expected: str) -> None:
    """Spaces go, IPv6 is compressed, and an IPv4-mapped address is its IPv4."""
    assert str(parse_address(text)) == expected


@pytest.mark.parametrize(
    "text",
    ["", "unknown", "10.20.0.300", "10.20.0.9:443", "[::1]", "10.20.0.0/16", "0x0a.1"],
)
def test_what_is_not_an_address_reads_as_none(text: str) -> None:
    """Ports, brackets, networks, names and out-of-range octets are not addresses."""
    assert parse_address(text) is None


def test_a_bare_address_is_a_network_of_one() -> None:
    """A configured address is a /32 (or /128), host bits of a CIDR are dropped."""
    networks = parse_networks(["10.0.0.5", " ::1 ", "10.20.0.9/16"])

    assert [str(n) for n in networks] == ["10.0.0.5/32", "::1/128", "10.20.0.0/16"]


@pytest.mark.parametrize(
    ("entry", "network"),
    [
        ("::ffff:10.0.0.5", "10.0.0.5/32"),
        ("::ffff:10.20.0.0/112", "10.20.0.0/16"),
        ("::ffff:0:0/96", "0.0.0.0/0"),
        ("::/0", "::/0"),
        ("2001:db8::/32", "2001:db8::/32"),
    ],
)
def test_an_ipv4_mapped_network_is_the_ipv4_network_it_maps(
    entry: str, network: str
) -> None:
    """As peers are: written in ``::ffff:`` form it would otherwise match nobody."""
    assert [str(n) for n in parse_networks([entry])] == [network]


def test_a_proxy_written_in_mapped_form_is_trusted() -> None:
    trusted = ("::ffff:10.0.0.5",)
    assert client_address("10.0.0.5", ["10.20.0.9"], trusted).ip == "10.20.0.9"
    assert client_address("::ffff:10.0.0.5", ["10.20.0.9"], trusted).ip == "10.20.0.9"


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "proxy.internal", "", "10.0.0.*"])
def test_a_malformed_network_raises_value_error(entry: str) -> None:
    """The entry is refused, never skipped, so a typo cannot widen or narrow trust."""
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6"):
        parse_networks(["10.20.0.0/16", entry])


@pytest.mark.parametrize(
    ("address", "inside"),
    [
        ("10.20.255.255", True),
        ("10.21.0.0", False),
        ("2001:db8:20:ffff::1", True),
        ("2001:db8:21::1", False),
        ("::a14:9", False),
    ],
)
def test_within_compares_an_address_with_networks_of_its_version(
    address: str, inside: bool
) -> None:
    """An IPv6 address whose bits look like an IPv4 network is not inside it."""
    assert within(ipaddress.ip_address(address), CAMPUS) is inside


# -- the decided address --------------------------------------------------------------


def test_a_unix_socket_peer_has_no_address() -> None:
    """With no peer address there is nothing to trust and nothing to decide."""
    decided = client_address(None, ["10.20.0.9"], PROXIES)

    assert (decided.ip, decided.claimed) == (None, "10.20.0.9")


def test_an_unparseable_peer_has_no_address() -> None:
    """A peer that is not an address is not taken from X-Forwarded-For instead."""
    assert client_address("unix:/run/mediator.sock", ["10.20.0.9"], PROXIES).ip is None


@pytest.mark.parametrize(
    ("forwarded_for", "expected"),
    [
        pytest.param(["198.51.100.7, 10.0.0.3, 10.0.0.4"], "198.51.100.7", id="chain"),
        pytest.param(["198.51.100.7,10.0.0.3", "10.0.0.4"], "198.51.100.7", id="lines"),
        pytest.param(["10.0.0.3, 10.0.0.4"], "10.0.0.3", id="all-trusted"),
        pytest.param(["1.1.1.1, 198.51.100.7"], "198.51.100.7", id="left-unread"),
        pytest.param(["1.1.1.1, 10.0.0.3:80"], "10.0.0.5", id="port-stops"),
        pytest.param(["1.1.1.1, "], "10.0.0.5", id="empty-entry-stops"),
        pytest.param(["1.1.1.1, unknown, 10.0.0.3"], "10.0.0.3", id="name-stops"),
    ],
)
def test_behind_trusted_proxies_the_rightmost_untrusted_entry_is_the_client(
    forwarded_for: list[str], expected: str
) -> None:
    """The walk goes right to left through trusted hops; a client-written entry
    to the left of the first untrusted one is never read, and an entry that is
    not an address ends the walk at the last hop known."""
    assert client_address(PROXY, forwarded_for, PROXIES).ip == expected


def test_a_proxy_outside_the_trusted_list_is_itself_the_client() -> None:
    """A peer one address past the trusted network gets no say."""
    assert client_address("10.0.0.8", ["10.20.0.9"], PROXIES).ip == "10.0.0.8"


def test_an_ipv4_mapped_peer_is_matched_against_ipv4_proxies() -> None:
    """A dual-stack socket's ``::ffff:`` form of a proxy is still that proxy."""
    assert client_address("::ffff:10.0.0.5", ["10.20.0.9"], PROXIES).ip == "10.20.0.9"


def test_a_long_claim_is_cut_for_the_record() -> None:
    """The claimed header keeps at most CLAIM_LIMIT characters and says it was cut."""
    claim = ", ".join(["10.20.0.9"] * 100)

    claimed = client_address("198.51.100.7", [claim], ()).claimed

    assert claimed == claim[:CLAIM_LIMIT] + TRUNCATED


def test_the_claim_is_kept_even_when_it_decided_nothing() -> None:
    """Lines are joined as received, though the peer was not a trusted proxy."""
    decided = client_address("198.51.100.7", ["10.20.0.9", "10.0.0.1"], PROXIES)

    assert (decided.ip, decided.claimed) == ("198.51.100.7", "10.20.0.9, 10.0.0.1")


def test_no_forwarded_for_means_no_claim() -> None:
    """An absent header is recorded as None, not as an empty claim."""
    assert client_address(PROXY, [], PROXIES).claimed is None


# -- the allow-list -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ip", "allowed"),
    [
        ("10.20.3.4", True),
        ("::ffff:10.20.3.4", True),
        ("2001:db8:20::1", True),
        ("10.21.3.4", False),
        ("not-an-address", False),
        (None, False),
    ],
)
def test_an_allow_list_admits_only_addresses_inside_it(
    ip: str | None, allowed: bool
) -> None:
    """No address, or a malformed one, fails an allow-list that has entries."""
    assert allowed_from(ip, CAMPUS) is allowed


@pytest.mark.parametrize("ip", ["198.51.100.7", None])
def test_an_empty_allow_list_admits_everyone(ip: str | None) -> None:
    """A right with no source networks does not restrict by address."""
    assert allowed_from(ip, ()) is True
