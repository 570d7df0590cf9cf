"""The collected admin routes: where they live, who may call them, none shadowed."""

from __future__ import annotations

import pytest

from gateway.admin import config, routing
from gateway.admin.auth import Role
from gateway.admin.config import AdminRoute
from gateway.admin.framework import PATH_PARAM, PREFIX, Route, find

API = PREFIX


def _concrete(path: str) -> str:
    return PATH_PARAM.sub("x-1", path)


def test_every_route_lives_under_the_api_prefix() -> None:
    assert all(r.path.startswith(f"{API}/") for r in routing.all_routes())


def test_no_two_routes_share_a_method_and_path() -> None:
    pairs = [(r.method, r.path) for r in routing.all_routes()]

    assert len(pairs) == len(set(pairs))


def test_every_route_is_reached_by_its_own_path() -> None:
    """No route with a parameter hides a literal one that comes after it."""
    routes = routing.all_routes()

    reached = [find(routes, r.method, _concrete(r.path))[0] for r in routes]

    assert reached == routes


@pytest.mark.parametrize(
    ("method", "path", "roles"),
    [
        ("POST", f"{API}/config/reload", {Role.OPS}),
        ("GET", f"{API}/config/check", {Role.INTEGRATOR}),
        ("POST", f"{API}/consents", {Role.SECURITY_OFFICER}),
        ("POST", f"{API}/consents/{{consent_id}}/revoke", {Role.SECURITY_OFFICER}),
        ("POST", f"{API}/subjects/exchanges", {Role.SECURITY_OFFICER}),
        ("POST", f"{API}/maintenance", {Role.OPS}),
        ("GET", f"{API}/log/search", {Role.SECURITY_OFFICER}),
        ("POST", f"{API}/log/verify", {Role.SECURITY_OFFICER}),
    ],
)
def test_a_route_that_changes_or_reveals_is_held_to_its_roles(
    method: str, path: str, roles: set[Role]
) -> None:
    """Configuration, consent, maintenance and the message log, each to one role."""
    [route] = [r for r in routing.all_routes() if (r.method, r.path) == (method, path)]

    assert route.roles == roles


def test_a_departmental_client_reaches_only_its_monitoring_records() -> None:
    open_to_clients = [
        (r.method, r.path) for r in routing.all_routes() if Role.CLIENT in r.roles
    ]

    assert open_to_clients == [("GET", f"{API}/opmonitoring")]


def test_a_route_that_names_no_role_of_the_node_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def routes() -> list[AdminRoute]:
        return [AdminRoute("POST", f"{API}/config/reload", config.reload_config, "x")]

    monkeypatch.setattr(config, "routes", routes)

    with pytest.raises(ValueError, match="'x' is not a valid Role"):
        routing.all_routes()


def test_every_route_is_mounted_as_a_route_with_roles() -> None:
    routes = routing.all_routes()

    assert all(isinstance(r, Route) and r.roles for r in routes)
