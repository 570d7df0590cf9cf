"""Who is calling, by address: the TCP peer, or what a trusted proxy says (C14).

The client address is the TCP peer's, unless the peer is one of the configured
trusted proxies (``node.yaml`` ``trusted_proxies``); then it is the right-most
``X-Forwarded-For`` entry that is not itself a trusted proxy. ``X-Real-IP`` and
``Forwarded`` are never read: a client can write any of them. The address only
serves IP allow-lists and the ``X-Forwarded-For`` the node builds for the provider;
rate limits are keyed by the authenticated client, never by an address.

An IPv4-mapped IPv6 address (``::ffff:10.20.0.9``) is the IPv4 address it maps, so
that one host cannot count as two. What a client claimed in ``X-Forwarded-For`` is
kept for the record (escaped, personal numbers masked), apart from the address the
node decided on.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.logsafe import escape, redact_numbers

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: How many characters of a claimed X-Forwarded-For the record keeps.
CLAIM_LIMIT = 256
# RFC 4291 section 2.5.5.2: IPv4-mapped IPv6 addresses.
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


@dataclass(frozen=True, slots=True)
class ClientAddress:
    """The address the node decided on, and what the request claimed."""

    #: The client's address, or None when the peer has none (a Unix socket).
    ip: str | None
    #: The X-Forwarded-For lines as received, joined and escaped; None if absent.
    claimed: str | None


def parse_address(text: str) -> Address | None:
    """An address from ``text``, IPv4-mapped ones as IPv4; None if malformed."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """Networks from CIDR strings (a bare address is a /32 or /128).

    An IPv4-mapped network (``::ffff:10.20.0.0/112``) is the IPv4 network it maps,
    as peers are: written that way, it would otherwise match no one.

    :raises ValueError: an entry is not an address or network.
    """
    return tuple(
        _unmapped(ipaddress.ip_network(entry.strip(), strict=False))
        for entry in entries
    )


def _unmapped(network: Network) -> Network:
    if not isinstance(network, ipaddress.IPv6Network) or not network.subnet_of(_MAPPED):
        return network
    mapped = network.network_address.ipv4_mapped
    return ipaddress.IPv4Network((mapped, network.prefixlen - 96))


@functools.lru_cache(maxsize=32)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return parse_networks(entries)


def within(address: Address, networks: Iterable[Network]) -> bool:
    """Whether ``address`` lies in any of ``networks``. Raises nothing."""
    return any(address.version == net.version and address in net for net in networks)


def client_address(
    peer: str | None, forwarded_for: list[str], trusted: tuple[str, ...]
) -> ClientAddress:
    """The client's address for a request from ``peer`` with these XFF lines.

    ``trusted`` are the trusted proxies as configured (validated at load, so a
    malformed one raises ValueError here only if the settings were bypassed).
    """
    claimed = None
    if forwarded_for:
        claimed = redact_numbers(escape(", ".join(forwarded_for), CLAIM_LIMIT))
    hop = parse_address(peer) if peer is not None else None
    if hop is None:
        return ClientAddress(None, claimed)
    proxies = _networks(trusted)
    if not within(hop, proxies):
        return ClientAddress(str(hop), claimed)
    entries = [part for line in forwarded_for for part in line.split(",")]
    for entry in reversed(entries):
        found = parse_address(entry)
        if found is None:
            # Not an address: nothing left of it can be trusted; the last hop stands.
            break
        hop = found
        if not within(hop, proxies):
            break
    return ClientAddress(str(hop), claimed)


def allowed_from(ip: str | None, networks: tuple[Network, ...]) -> bool:
    """Whether a client at ``ip`` passes an allow-list; an empty list allows all."""
    if not networks:
        return True
    address = parse_address(ip) if ip is not None else None
    return address is not None and within(address, networks)
