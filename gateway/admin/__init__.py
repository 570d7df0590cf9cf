"""The admin surface of a node: health, metrics, dashboard and the admin API.

Modules that offer admin endpoints expose ``routes()``; :func:`all_routes` collects
them and :func:`handle_admin` serves them under ``/admin``.
"""

from gateway.admin.routing import all_routes
from gateway.admin.surface import handle_admin

__all__ = ["all_routes", "handle_admin"]
