"""Admin routes: path parameters, lookup by method, mounting, audit notes, queries."""

from __future__ import annotations

import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from gateway.admin.auth import Identity, Role
from gateway.admin.config import AdminRoute
from gateway.admin.framework import (
    ANY_ADMIN,
    Route,
    change_of,
    find,
    identity_of,
    mounted,
    note_change,
    query_number,
)
from gateway.errors import Reason, ResolutionError
from gateway.node import Node
from tests.gateway.admin.support import admin_request


async def _handler(_request: Request, _node: Node) -> Response:
    """Do nothing in particular.

    The rest of this docstring is not the summary.
    """
    return PlainTextResponse("")


REVOKE = Route("POST", "/c/{consent_id}/revoke", ANY_ADMIN, _handler)
DOCUMENT = Route("GET", "/admin/api/v1/openapi.json", ANY_ADMIN, _handler)
ROUTES = [
    Route("GET", "/keys", ANY_ADMIN, _handler),
    Route("POST", "/maintenance", ANY_ADMIN, _handler),
    Route("GET", "/maintenance", ANY_ADMIN, _handler),
    REVOKE,
]


# -- matching paths --------------------------------------------------------------------


def test_a_path_parameter_takes_one_segment() -> None:
    assert REVOKE.match("/c/3f2a-b.c_d:e/revoke") == {"consent_id": "3f2a-b.c_d:e"}


@pytest.mark.parametrize(
    "path",
    [
        "/c//revoke",
        "/c/a/b/revoke",
        "/c/a b/revoke",
        "/c/a%2Fb/revoke",
        "/c/ünï/revoke",
        f"/c/{'a' * 129}/revoke",
        "/c/abc/revoke/",
        "/c/abc/revoke/more",
        "/x/c/abc/revoke",
    ],
)
def test_a_path_outside_the_parameters_alphabet_or_shape_is_not_matched(
    path: str,
) -> None:
    """Slashes, spaces, escapes, non-ASCII, over 128 characters or extra segments."""
    assert REVOKE.match(path) is None


def test_a_parameter_of_128_characters_is_matched() -> None:
    assert REVOKE.match(f"/c/{'a' * 128}/revoke") == {"consent_id": "a" * 128}


def test_literal_segments_match_only_themselves() -> None:
    """A dot in a route's path is a dot, not any character."""
    assert DOCUMENT.match("/admin/api/v1/openapi.json") == {}
    assert DOCUMENT.match("/admin/api/v1/openapiXjson") is None


# -- finding the route -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "found", "known"),
    [
        ("GET", "/keys", ("GET", "/keys"), True),
        ("HEAD", "/keys", ("GET", "/keys"), True),
        ("POST", "/maintenance", ("POST", "/maintenance"), True),
        ("GET", "/maintenance", ("GET", "/maintenance"), True),
        ("DELETE", "/keys", None, True),
        ("HEAD", "/c/abc/revoke", None, True),
        ("GET", "/nothing", None, False),
    ],
)
def test_find_tells_an_unknown_path_from_a_method_not_allowed(
    method: str, path: str, found: tuple[str, str] | None, known: bool
) -> None:
    """HEAD is served by a GET route, and by nothing else."""
    route, path_known = find(ROUTES, method, path)

    assert ((route.method, route.path) if route else None) == found
    assert path_known is known


# -- mounting --------------------------------------------------------------------------


def test_an_admin_route_is_mounted_with_its_one_role_and_a_summary() -> None:
    """The summary is the first line of the handler's docstring."""
    route = mounted(AdminRoute("POST", "/reload", _handler, "ops"))

    assert (route.method, route.path, route.handler) == ("POST", "/reload", _handler)
    assert route.roles == frozenset({Role.OPS})
    assert route.summary == "Do nothing in particular."


def test_a_route_is_mounted_as_it_is() -> None:
    assert mounted(REVOKE) is REVOKE


def test_an_admin_route_with_an_unknown_role_cannot_be_mounted() -> None:
    with pytest.raises(ValueError, match="'root' is not a valid Role"):
        mounted(AdminRoute("POST", "/reload", _handler, "root"))


# -- the caller and the audit note -----------------------------------------------------


def test_the_handler_reads_the_caller_the_surface_set() -> None:
    caller = Identity("alice", Role.SECURITY_OFFICER, "jwt")

    assert identity_of(admin_request(identity=caller)) is caller


def test_a_noted_change_is_the_audit_entry() -> None:
    request = admin_request("POST", "/c/abc/revoke")
    note_change(request, "consent.revoke", "abc", {"by": "desk"})

    entry = change_of(request.scope, REVOKE, {"consent_id": "abc"})

    assert entry == ("consent.revoke", "abc", {"by": "desk"})


@pytest.mark.parametrize(
    ("params", "target"),
    [
        ({"consent_id": "abc", "b": "2", "a": "1"}, "a=1,b=2,consent_id=abc"),
        ({}, "/c/{consent_id}/revoke"),
    ],
)
def test_without_a_note_the_entry_names_the_route_and_its_parameters(
    params: dict[str, str], target: str
) -> None:
    """Parameters in name order; the route's own path when it has none."""
    entry = change_of({}, REVOKE, params)

    assert entry == ("POST /c/{consent_id}/revoke", target, {})


# -- numbers in the query --------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [("", 7.0), ("n=2.5", 2.5), ("n=-3", -3.0), ("n=1e3", 1000.0), ("other=1", 7.0)],
)
def test_a_query_number_or_its_default(query: str, expected: float) -> None:
    assert query_number(admin_request(query=query), "n", 7.0) == expected


@pytest.mark.parametrize(
    "raw", ["abc", "", "nan", "inf", "-Infinity", "1e400", "0x10", "1,5"]
)
def test_a_query_number_that_is_not_finite_is_refused(raw: str) -> None:
    with pytest.raises(ResolutionError, match="invalid_query") as caught:
        query_number(admin_request(query=f"n={raw}"), "n", 7.0)

    assert caught.value.reason is Reason.INVALID_QUERY
    assert caught.value.log_reason == "bad_number"
