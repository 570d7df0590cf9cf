"""The pieces every admin API module shares: routes, the caller, audit notes.

A module offers its endpoints through a ``routes()`` function that returns
:class:`~gateway.admin.config.AdminRoute` (one role) or :class:`Route` (several
roles) objects; :func:`gateway.admin.all_routes` collects them. A handler is a
function of ``(request, node)`` returning a Starlette response; it reads the
authenticated caller with :func:`identity_of`. Every successful request that is not
a ``GET`` is written to the admin audit log by the surface; a handler may describe
its change better with :func:`note_change`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from starlette.requests import Request
from starlette.responses import Response

from gateway.admin.auth import Identity, Role
from gateway.admin.config import AdminRoute
from gateway.errors import FramingError, Reason, ResolutionError
from gateway.jsonbody import parse_json
from gateway.relay import require_json

if TYPE_CHECKING:
    from gateway.node import Node

PREFIX: Final = "/admin/api/v1"
ANY_ADMIN: Final = frozenset({Role.OPS, Role.SECURITY_OFFICER, Role.INTEGRATOR})
_IDENTITY: Final = "mediator.admin.identity"
_CHANGE: Final = "mediator.admin.change"
PATH_PARAM: Final = re.compile(r"\{([a-z_]+)\}")
#: The largest integer SQLite stores (a signed 64-bit one).
MAX_SQL_INT: Final = 2**63 - 1
_WHOLE: Final = re.compile(r"[0-9]{1,19}")

Handler = Callable[[Request, "Node"], Awaitable[Response]]


@dataclass(frozen=True)
class Route:
    """One admin endpoint; ``{name}`` in ``path`` is one segment."""

    method: str
    path: str
    roles: frozenset[Role]
    handler: Handler
    summary: str = ""
    #: Query parameters, for the OpenAPI document: name -> description.
    query: dict[str, str] = field(default_factory=dict)
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regex", re.compile(_regex(self.path)))

    def match(self, path: str) -> dict[str, str] | None:
        found = self.regex.fullmatch(path)
        return found.groupdict() if found is not None else None


def mounted(route: Route | AdminRoute) -> Route:
    """A route as the surface mounts it; an AdminRoute's one role becomes a set.

    :raises ValueError: an AdminRoute names a role that does not exist.
    """
    if isinstance(route, Route):
        return route
    summary = (route.handler.__doc__ or "").strip().split("\n")[0]
    return Route(
        route.method, route.path, frozenset({Role(route.role)}), route.handler, summary
    )


def find(routes: Iterable[Route], method: str, path: str) -> tuple[Route | None, bool]:
    """The route for ``method`` and ``path``, and whether any route has the path."""
    path_known = False
    for route in routes:
        if route.match(path) is None:
            continue
        path_known = True
        if route.method == method or (route.method == "GET" and method == "HEAD"):
            return route, True
    return None, path_known


def allowed_methods(routes: Iterable[Route], path: str) -> list[str]:
    """The methods some route serves at ``path`` (HEAD wherever GET is)."""
    methods = {route.method for route in routes if route.match(path) is not None}
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


async def json_body(request: Request, max_bytes: int) -> Any:
    """The request's JSON body, parsed strictly.

    :raises FramingError: ``body_too_large`` over ``max_bytes``; ``invalid_header``
        for more than one Content-Type (the exchange surface refuses them too:
        which one a reader takes is a guess).
    :raises PayloadError: ``unsupported_media_type`` unless it says it is JSON,
        then the strict parser's refusals (gateway.jsonbody).
    """
    raw = await request.body()
    if len(raw) > max_bytes:
        raise FramingError(Reason.BODY_TOO_LARGE, log_reason="admin_body_too_large")
    given = request.headers.getlist("content-type")
    if len(given) > 1:
        raise FramingError(Reason.INVALID_HEADER, log_reason="duplicate_content_type")
    content_type = given[0] if given else None
    require_json(content_type)
    return parse_json(raw, content_type=content_type)


def identity_of(request: Request) -> Identity:
    """The authenticated caller of an admin request (set by the surface)."""
    identity: Identity = request.scope[_IDENTITY]
    return identity


def set_identity(scope: MutableMapping[str, Any], identity: Identity) -> None:
    scope[_IDENTITY] = identity


def note_change(
    request: Request, action: str, target: str, details: dict[str, Any]
) -> None:
    """Describe the change this request made, for the audit log entry.

    ``details`` hold names, ids, flags and times only: never a token, key, body or
    student id.
    """
    request.scope[_CHANGE] = (action, target, details)


def change_of(
    scope: Mapping[str, Any], route: Route, params: dict[str, str]
) -> tuple[str, str, dict[str, Any]]:
    """The audit entry for a change: the handler's note, else the route itself."""
    noted: tuple[str, str, dict[str, Any]] | None = scope.get(_CHANGE)
    if noted is not None:
        return noted
    target = ",".join(f"{k}={v}" for k, v in sorted(params.items())) or route.path
    return f"{route.method} {route.path}", target, {}


def query_number(request: Request, name: str, default: float) -> float:
    """A finite number from the query; raise ResolutionError(INVALID_QUERY)."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ResolutionError(Reason.INVALID_QUERY, log_reason="bad_number") from exc
    if not math.isfinite(value):
        raise ResolutionError(Reason.INVALID_QUERY, log_reason="bad_number")
    return value


def query_whole(request: Request, name: str, default: int) -> int:
    """A whole number in ``[0, MAX_SQL_INT]`` from the query, in decimal digits.

    Parsed as an integer, not through a float, so that a cursor keeps every digit.

    :raises ResolutionError: ``INVALID_QUERY`` for anything else.
    """
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if _WHOLE.fullmatch(raw) is None or int(raw) > MAX_SQL_INT:
        raise ResolutionError(Reason.INVALID_QUERY, log_reason="bad_whole_number")
    return int(raw)


def _regex(path: str) -> str:
    parts = []
    for segment in path.split("/"):
        name = PATH_PARAM.fullmatch(segment)
        parts.append(
            f"(?P<{name.group(1)}>[A-Za-z0-9._:-]{{1,128}})"
            if name is not None
            else re.escape(segment)
        )
    return "/".join(parts)
