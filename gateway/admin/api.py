"""The operations endpoints of the admin API under ``/admin/api/v1``.

Health and environment, the maintenance switch, operational monitoring records,
the message log search and verification for the security officer, the node's
public keys and the dashboard's figures. Handlers are functions of
``(request, node)``; :func:`routes` lists them with the roles that may call them.
"""

from __future__ import annotations

import time
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Final

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.admin.auth import Role
from gateway.admin.framework import (
    ANY_ADMIN,
    PREFIX,
    Route,
    identity_of,
    json_body,
    note_change,
    query_number,
    query_whole,
)
from gateway.admin.health import environment
from gateway.errors import PayloadError, Reason, ResolutionError
from gateway.metrics import key_facts
from gateway.monitoring import MAX_PAGE, OpQuery
from gateway.msglog import officer
from gateway.msglog.store import LogStore, SearchQuery
from gateway.msglog.stores import reading_store

if TYPE_CHECKING:
    from gateway.node import Node

_DAY: Final = 86400.0
_MAX_BODY: Final = 4096
_OPS: Final = frozenset({Role.OPS})
_OFFICER: Final = frozenset({Role.SECURITY_OFFICER})
_READERS: Final = frozenset({Role.OPS, Role.SECURITY_OFFICER})
_MONITORS: Final = ANY_ADMIN | {Role.CLIENT}


async def health(_request: Request, node: Node) -> Response:
    """The load balancer's checks, with maintenance and exchanges in flight."""
    result = await node.ops.health.check(node)
    return JSONResponse({**result, **node.ops.maintenance.to_json()})


async def env(_request: Request, node: Node) -> Response:
    """Memory, disk of the log store, CPU count and software versions."""
    return JSONResponse(environment(node))


async def get_maintenance(_request: Request, node: Node) -> Response:
    """Whether the node is in maintenance, and how many exchanges still run."""
    return JSONResponse(node.ops.maintenance.to_json())


async def set_maintenance(request: Request, node: Node) -> Response:
    """Turn maintenance on or off: ``{"maintenance": true}``."""
    body = await json_body(request, _MAX_BODY)
    wanted = body.get("maintenance") if isinstance(body, dict) else None
    if not isinstance(wanted, bool):
        raise PayloadError(Reason.SCHEMA_VIOLATION, pointer="/maintenance")
    if set(body) != {"maintenance"}:
        # An unknown field is a mistake to report, not a wish to ignore.
        raise PayloadError(Reason.SCHEMA_VIOLATION, log_reason="unknown_field")
    node.ops.maintenance.set(wanted, identity_of(request).actor)
    node.ops.metrics.maintenance.set(1 if wanted else 0)
    note_change(
        request,
        "maintenance.set",
        node.deployment.settings.node_id,
        {"maintenance": wanted},
    )
    return JSONResponse(node.ops.maintenance.to_json())


async def opmonitoring(request: Request, node: Node) -> Response:
    """Monitoring records in ``[since, until)``, oldest first, one page at a time.

    A departmental client sees only its own records; admins may filter by
    ``client_id``.
    """
    now = time.time()
    identity = identity_of(request)
    client_id = request.query_params.get("client_id")
    if identity.role is Role.CLIENT:
        client_id = identity.id
    query = OpQuery(
        since=query_number(request, "since", now - _DAY),
        until=query_number(request, "until", now + 1),
        client_id=client_id,
        after_id=query_whole(request, "after", 0),
        limit=int(query_number(request, "limit", 100)),
    )
    if not 1 <= query.limit <= MAX_PAGE:
        raise ResolutionError(Reason.INVALID_QUERY, log_reason="bad_page")
    page = await node.ops.monitor.query(query)
    return JSONResponse({"records": page.records, "next_after": page.next_after})


async def log_search(request: Request, node: Node) -> Response:
    """Message-log records by client, service, decision, message id and time."""
    params = request.query_params
    limit = int(query_number(request, "limit", 100))
    if not 1 <= limit <= MAX_PAGE:
        raise ResolutionError(Reason.INVALID_QUERY, log_reason="bad_limit")
    since = params.get("since")
    until = params.get("until")
    query = SearchQuery(
        client_id=params.get("client_id"),
        service_id=params.get("service_id"),
        decision=params.get("decision"),
        message_id=params.get("message_id"),
        since=query_number(request, "since", 0) if since is not None else None,
        until=query_number(request, "until", 0) if until is not None else None,
        limit=limit,
    )
    async with _reading(node) as store:
        found = await store.search(query)
    records = [
        {"seq": r.seq, "hash": r.hash, "record": orjson.loads(r.canonical)}
        for r in found
    ]
    return JSONResponse({"records": records})


async def log_verify(request: Request, node: Node) -> Response:
    """Verify the whole message log against the node's public keys."""
    entries = node.keyring.public_keys()
    keys = {kid: e.public_key for kid, e in entries.items()}
    revoked = {kid: float(e.revoked_at) for kid, e in entries.items() if e.revoked_at}
    async with _reading(node) as store:
        summary = await officer.verify_summary(store, keys, revoked_at=revoked)
    note_change(
        request,
        "log.verify",
        node.deployment.settings.node_id,
        {"ok": summary["ok"], "records": summary["records"]},
    )
    return JSONResponse(summary)


async def keys(_request: Request, node: Node) -> Response:
    """The node's keys: public facts only (state, times, age, days to expiry)."""
    lifetime = node.deployment.settings.monitoring.key_lifetime_days
    return JSONResponse(
        {"keys": key_facts(node.keyring.public_keys(), lifetime, time.time())}
    )


async def dashboard(request: Request, node: Node) -> Response:
    """The dashboard's figures for the last ``hours`` (default 24)."""
    hours = query_number(request, "hours", 24)
    if not 0 < hours <= 24 * 90:
        raise ResolutionError(Reason.INVALID_QUERY, log_reason="bad_hours")
    now = time.time()
    await node.ops.monitor.flush()
    summary = await node.ops.monitor.summary(now - hours * 3600, now + 1)
    settings = node.deployment.settings
    log_path = node.deployment.path(settings.log.sqlite_path)
    lifetime = settings.monitoring.key_lifetime_days
    summary["log"] = {
        "records": node.log.size,
        "bytes": log_path.stat().st_size if log_path.exists() else 0,
    }
    summary["keys"] = key_facts(node.keyring.public_keys(), lifetime, now)
    return JSONResponse(summary)


def _reading(node: Node) -> AbstractAsyncContextManager[LogStore]:
    return reading_store(node.deployment.settings.log, node.deployment.path)


def routes() -> list[Route]:
    """The operations endpoints and who may call them."""
    page = {
        "since": "Unix time, inclusive (default: a day ago)",
        "until": "Unix time, exclusive (default: now)",
        "after": "The next_after of the previous page",
        "limit": f"Records per page, 1-{MAX_PAGE}",
    }
    return [
        Route("GET", f"{PREFIX}/health", ANY_ADMIN, health, "Health checks"),
        Route("GET", f"{PREFIX}/environment", ANY_ADMIN, env, "Environment facts"),
        Route(
            "GET",
            f"{PREFIX}/maintenance",
            ANY_ADMIN,
            get_maintenance,
            "Maintenance state",
        ),
        Route(
            "POST",
            f"{PREFIX}/maintenance",
            _OPS,
            set_maintenance,
            "Turn maintenance on or off",
        ),
        Route(
            "GET",
            f"{PREFIX}/opmonitoring",
            _MONITORS,
            opmonitoring,
            "Operational monitoring records",
            {**page, "client_id": "Admins only"},
        ),
        Route(
            "GET",
            f"{PREFIX}/log/search",
            _OFFICER,
            log_search,
            "Search the message log",
            {
                "client_id": "",
                "service_id": "",
                "decision": "",
                "message_id": "",
                "since": "",
                "until": "",
                "limit": "",
            },
        ),
        Route(
            "POST",
            f"{PREFIX}/log/verify",
            _OFFICER,
            log_verify,
            "Verify the message log",
        ),
        Route("GET", f"{PREFIX}/keys", ANY_ADMIN, keys, "The node's public keys"),
        Route(
            "GET",
            f"{PREFIX}/dashboard",
            _READERS | {Role.INTEGRATOR},
            dashboard,
            "Figures for the dashboard",
            {"hours": "Window in hours (default 24)"},
        ),
    ]
