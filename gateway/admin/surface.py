"""The admin surface: everything under ``/admin``.

- ``/admin/health``: for load balancers, no credential, cached checks;
- ``/admin/dashboard/``: the dashboard's static files (its data needs a credential);
- ``/admin/api/v1/openapi.json``: the OpenAPI document of the admin API;
- ``/admin/metrics``: Prometheus metrics (ops and security officers);
- every route that :func:`gateway.admin.all_routes` collects, behind the admin
  authenticator, a rate limit per identity and the route's roles.

The Host header is checked as for exchanges (except on ``/admin/health``), bodies
are capped, and every successful change is written to the admin audit log before
the answer goes out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from importlib import resources
from typing import TYPE_CHECKING, Any, Final

import orjson
import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from gateway import wire
from gateway.admin.auth import Identity, Role
from gateway.admin.framework import (
    Route,
    allowed_methods,
    change_of,
    find,
    set_identity,
)
from gateway.admin.openapi import document
from gateway.audit import AuditLog
from gateway.errors import (
    AccessDeniedError,
    AdminRequestError,
    AuthenticationError,
    ConfigError,
    FramingError,
    MediatorError,
    NodeError,
    Reason,
    ResolutionError,
    ThrottledError,
)
from gateway.framing import (
    check_host,
    declared_body,
    method_not_allowed,
    parse_headers,
)
from gateway.metrics import CONTENT_TYPE as METRICS_TYPE
from gateway.msglog.store import StoreError
from gateway.msglog.stores import reading_store
from gateway.throttle import LocalWindow, parse_rate

if TYPE_CHECKING:
    from gateway.node import Node

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = structlog.get_logger("gateway.admin")

MAX_BODY: Final = 64 * 1024
_METRICS_ROLES: Final = frozenset({Role.OPS, Role.SECURITY_OFFICER})
_READ_ONLY_PATHS: Final = frozenset(
    {"/admin/health", "/admin/metrics", "/admin/api/v1/openapi.json"}
)
_READS: Final = frozenset({"GET", "HEAD"})
_STATIC: Final = {
    "": ("dashboard.html", "text/html; charset=utf-8"),
    "dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
}
_STATIC_HEADERS: Final = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


class AdminLimiter:
    """Moving-window rate limits of the admin API, both at ``rate``, in the node's
    own windows (:class:`gateway.throttle.LocalWindow`) on ``clock``, a monotonic
    clock:

    - requests per admin identity;
    - failed authentications per peer: a peer whose failures fill the window is
      refused before its credential is checked, and that check counts nothing.

    :raises ConfigError: ``rate`` is not a rate such as ``120/minute``.
    """

    def __init__(
        self, rate: str, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        item = parse_rate(rate)
        self._limit, self._period = item.amount, item.get_expiry()
        self._requests = LocalWindow(clock)
        self._failures = LocalWindow(clock)

    def admit(self, actor: str) -> bool:
        """Count one request of ``actor``; False if it is over the rate."""
        return self._requests.hit(actor, self._limit, self._period) is None

    def peer_allowed(self, peer: str) -> bool:
        """Whether ``peer`` may try a credential: its failures leave room."""
        return self._failures.wait(peer, self._limit, self._period) is None

    def failed(self, peer: str) -> None:
        """Count one failed authentication of ``peer``."""
        self._failures.hit(peer, self._limit, self._period)


async def handle_admin(node: Node, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer one request under ``/admin``; raise nothing."""
    try:
        response = await _dispatch(node, scope, _capped(receive))
    except MediatorError as exc:
        response = error_response(exc)
    except ConfigError:
        # Only the event: the error names a file path, no request value.
        log.error("admin.audit_unavailable")  # noqa: TRY400
        response = error_response(NodeError(Reason.LOG_UNAVAILABLE, log_reason="audit"))
    await response(scope, receive, send)


async def _dispatch(node: Node, scope: Scope, receive: Receive) -> Response:
    path: str = scope["path"]
    method: str = scope["method"]
    if _read_only(path) and method not in _READS:
        raise method_not_allowed(("GET", "HEAD"))
    limits = node.deployment.settings.limits
    headers = parse_headers(scope["headers"], limits.max_header_bytes)
    # As on the exchange surface: no body on GET, HEAD or DELETE.
    length = declared_body(method, headers)
    if length is not None and length > MAX_BODY:
        # Refused before a byte is read, as on the exchange surface (C19).
        raise FramingError(Reason.BODY_TOO_LARGE, log_reason="declared_too_large")
    if path == "/admin/health":
        # For load balancers, which may name the node by any Host.
        return await _health(node)
    check_host(headers, node.allowed_hosts)
    if path == "/admin/dashboard":
        return RedirectResponse("/admin/dashboard/", status_code=308)
    if path.startswith("/admin/dashboard/"):
        return _static(path.removeprefix("/admin/dashboard/"))
    if path == "/admin/api/v1/openapi.json":
        return JSONResponse(document(), headers={"cache-control": "max-age=300"})

    identity = await _authenticate(node, scope, headers)
    if path == "/admin/metrics":
        _require(identity, _METRICS_ROLES)
        return await _metrics(node)
    route, known = find(node.ops.admin_routes, method, path)
    if route is None:
        if known:
            raise method_not_allowed(allowed_methods(node.ops.admin_routes, path))
        raise ResolutionError(Reason.UNKNOWN_SERVICE, log_reason="unknown_admin_path")
    _require(identity, route.roles)
    set_identity(scope, identity)
    scope["path_params"] = route.match(path) or {}
    response = await route.handler(Request(scope, receive), node)
    if method not in ("GET", "HEAD") and response.status_code < 400:
        await _audit(node, scope, route, identity)
    log.info(
        "admin.request",
        actor=identity.actor,
        method=method,
        route=route.path,
        status=response.status_code,
    )
    return response


async def _authenticate(node: Node, scope: Scope, headers: Any) -> Identity:
    client = scope.get("client")
    peer = client[0] if client else "-"
    limiter = node.ops.admin_limiter
    if not limiter.peer_allowed(peer):
        raise ThrottledError(Reason.RATE_LIMITED, log_reason="admin_auth_failures")
    try:
        identity = await node.ops.admin_auth.authenticate(headers)
    except AuthenticationError:
        limiter.failed(peer)
        log.info("admin.denied", reason="authentication")
        raise
    if not limiter.admit(identity.actor):
        raise ThrottledError(Reason.RATE_LIMITED, log_reason="admin_rate")
    return identity


def _require(identity: Identity, roles: frozenset[Role]) -> None:
    if identity.role not in roles:
        log.info("admin.denied", actor=identity.actor, reason="role")
        raise AccessDeniedError(Reason.ACCESS_DENIED, log_reason="admin_role")


async def _audit(node: Node, scope: Scope, route: Route, identity: Identity) -> None:
    params = route.match(scope["path"]) or {}
    action, target, details = change_of(scope, route, params)
    audit_log = AuditLog.in_state_dir(node.state_dir)
    await asyncio.to_thread(audit_log.append, identity.actor, action, target, details)


async def _health(node: Node) -> Response:
    result = await node.ops.health.check(node)
    status = 200 if result["status"] == "ok" else 503
    return JSONResponse(
        result, status_code=status, headers={"cache-control": "no-store"}
    )


async def _metrics(node: Node) -> Response:
    ops = node.ops
    settings = node.deployment.settings
    checkpoint_size, checkpoint_ts = 0, None
    try:
        async with reading_store(settings.log, node.deployment.path) as store:
            latest = await store.latest_checkpoint()
    except StoreError:
        latest = None
    if latest is not None:
        checkpoint_size, checkpoint_ts = latest.tree_size, latest.timestamp
    ops.metrics.set_log(
        available=node.log.available,
        size=node.log.size,
        sealed_size=checkpoint_size,
        checkpoint_ts=checkpoint_ts,
    )
    ops.metrics.set_keys(
        node.keyring.public_keys(), settings.monitoring.key_lifetime_days
    )
    ops.metrics.opmon_dropped.set(ops.monitor.dropped)
    ops.metrics.opmon_queued.set(ops.monitor.queued)
    return Response(ops.metrics.render(), media_type=METRICS_TYPE)


def _static(name: str) -> Response:
    found = _STATIC.get(name)
    if found is None:
        raise ResolutionError(Reason.UNKNOWN_SERVICE, log_reason="unknown_static")
    file, media_type = found
    body = resources.files("gateway.admin").joinpath("static", file).read_bytes()
    return Response(body, media_type=media_type, headers=_STATIC_HEADERS)


def error_response(exc: MediatorError) -> Response:
    """The X-Road error answer to ``exc``; an AdminRequestError's detail included."""
    detail = exc.detail if isinstance(exc, AdminRequestError) else ""
    body = {"type": exc.type, "message": exc.message, "detail": detail}
    headers = {wire.XROAD_ERROR: exc.type, **exc.headers}
    if isinstance(exc, FramingError):
        # As on the exchange surface: whatever follows a refused frame (a body
        # left unread, a pipelined request) is never parsed.
        headers["connection"] = "close"
    return Response(
        orjson.dumps(body),
        status_code=exc.status,
        media_type="application/json",
        headers=headers,
    )


def _read_only(path: str) -> bool:
    """The pages outside the API's routes, which only GET and HEAD may read."""
    return path in _READ_ONLY_PATHS or path.startswith("/admin/dashboard")


def _capped(receive: Receive) -> Receive:
    """``receive`` that refuses a body longer than :data:`MAX_BODY`, and one whose
    client left before it ended (``client_aborted``, as on the exchange surface:
    otherwise starlette's ClientDisconnect would escape to the server)."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.disconnect":
            raise FramingError(Reason.CLIENT_ABORTED)
        seen += len(message.get("body", b""))
        if seen > MAX_BODY:
            raise FramingError(Reason.BODY_TOO_LARGE)
        return message

    return wrapped
