"""Every admin route, collected from the modules that offer them.

A module joins the admin API by offering ``routes()`` and being listed here; the
surface mounts what :func:`all_routes` returns, with each route's roles.
"""

from __future__ import annotations

from gateway.admin import api, config, consent
from gateway.admin.config import AdminRoute
from gateway.admin.framework import Route, mounted


def all_routes() -> list[Route]:
    """The routes of the operations, configuration and consent APIs.

    :raises ValueError: a module's route names a role that does not exist.
    """
    offered: list[Route | AdminRoute] = [
        *api.routes(),
        *config.routes(),
        *consent.routes(),
    ]
    return [mounted(route) for route in offered]
