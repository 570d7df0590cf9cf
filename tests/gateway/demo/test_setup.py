"""The demo's deployment setup: ports for the servers it starts."""

from __future__ import annotations

import socket

import pytest

from gateway.demo import setup
from gateway.demo.setup import free_port


def test_ports_are_distinct_free_and_outside_the_ephemeral_range() -> None:
    """A source port of some outgoing connection can never take a server's port."""
    low, _high = setup._ephemeral_range()
    ports = [free_port() for _ in range(40)]

    assert len(set(ports)) == len(ports)
    assert all(port < low for port in ports)
    for port in ports[:5]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))


def test_a_port_in_use_is_never_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    first = free_port()
    monkeypatch.setattr(setup, "_LISTEN_PORTS", range(first, first + 1))
    monkeypatch.setattr(setup, "_HANDED_OUT", set())
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", first))
        busy.listen()

        assert free_port() != first
    assert free_port() == first
