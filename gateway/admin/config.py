"""Configuration reload on the admin surface, and on SIGHUP.

``POST /admin/api/v1/config/reload`` checks the deployment's files and, if every check
passes, swaps the new configuration into the running node (:meth:`Node.reload`);
otherwise it answers 422 with every error (file, line, reason) and the running
configuration stays. ``mediator serve`` installs :func:`watch_reload_signal` so that
``kill -HUP`` does the same; a refused reload is logged, never fatal.

The handlers are plain functions of ``(request, node)``; :func:`routes` lists them
with the role they need, for the admin surface to mount.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, NamedTuple

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.deployment import ReloadRefusedError, check_deployment
from gateway.errors import ConfigError

if TYPE_CHECKING:
    from gateway.node import Node

log = structlog.get_logger("gateway.admin.config")

#: Where the admin API lives (as in :mod:`gateway.admin.framework`).
PREFIX = "/admin/api/v1"

Handler = Callable[[Request, "Node"], Awaitable[Response]]


class AdminRoute(NamedTuple):
    """One admin endpoint: method, path, handler of ``(request, node)``, role."""

    method: str
    path: str
    handler: Handler
    role: str


def error_list(errors: list[ConfigError]) -> list[dict[str, object]]:
    """ConfigErrors as JSON: file, line and reason; never a config value."""
    return [{"file": e.file, "line": e.line, "reason": e.reason} for e in errors]


async def reload_config(_request: Request, node: Node) -> Response:
    """Reload the node's configuration; 422 with every error if it fails the check."""
    try:
        fresh = await node.reload()
    except ReloadRefusedError as refused:
        log.warning("config.reload_refused", errors=len(refused.errors))
        return JSONResponse(
            {"reloaded": False, "errors": error_list(refused.errors)}, status_code=422
        )
    except ConfigError as exc:
        log.warning("config.reload_refused", errors=1)
        return JSONResponse(
            {"reloaded": False, "errors": error_list([exc])}, status_code=422
        )
    return JSONResponse(
        {
            "reloaded": True,
            "services": len(fresh.directory.services()),
            "adapters": len(fresh.adapters),
            "purposes": sorted(f"{p.id}@{p.version}" for p in fresh.policies.purposes),
        }
    )


async def check_config(_request: Request, node: Node) -> Response:
    """Check the deployment's files as they are now, without loading them."""
    config_dir = node.deployment.config_dir
    errors = await asyncio.to_thread(check_deployment, config_dir)
    return JSONResponse({"valid": not errors, "errors": error_list(errors)})


def routes() -> list[AdminRoute]:
    """The configuration endpoints, for the admin surface to mount."""
    return [
        AdminRoute("POST", f"{PREFIX}/config/reload", reload_config, "ops"),
        AdminRoute("GET", f"{PREFIX}/config/check", check_config, "integrator"),
    ]


def watch_reload_signal(node: Node) -> Callable[[], None]:
    """Reload ``node`` on SIGHUP; return the function that stops watching.

    Must be called on the running event loop. Where the platform has no SIGHUP
    (or the loop cannot take signal handlers), nothing is installed.
    """
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()

    def on_signal() -> None:
        task = loop.create_task(_reload_logged(node))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    sighup = getattr(signal, "SIGHUP", None)
    if sighup is None:
        return lambda: None
    try:
        loop.add_signal_handler(sighup, on_signal)
    except (NotImplementedError, RuntimeError, ValueError):
        log.warning("config.sighup_unavailable")
        return lambda: None

    def stop() -> None:
        loop.remove_signal_handler(sighup)

    return stop


async def _reload_logged(node: Node) -> None:
    """A reload from a signal: its refusal is logged with every error's place."""
    try:
        await node.reload()
    except ReloadRefusedError as refused:
        for error in refused.errors:
            log.warning("config.reload_refused", file=error.file, line=error.line)
    except ConfigError as exc:
        log.warning("config.reload_refused", file=exc.file, line=exc.line)
