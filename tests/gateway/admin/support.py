"""Requests for calling admin handlers directly, without the surface in front."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from starlette.requests import Request

from gateway.admin.auth import Identity, Role
from gateway.admin.framework import set_identity

OPS = Identity("key-0ps", Role.OPS, "apikey")


def admin_request(
    method: str = "GET",
    path: str = "/admin/api/v1/test",
    *,
    query: str = "",
    body: bytes = b"",
    content_type: str | None = "application/json",
    identity: Identity | None = OPS,
    path_params: dict[str, str] | None = None,
) -> Request:
    """A request as the surface hands it to a handler, with its caller set."""
    headers = [] if content_type is None else [(b"content-type", content_type.encode())]
    scope: dict[str, Any] = {
        "type": "http",
        "http_version": "1.1",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": headers,
        "path_params": path_params or {},
    }
    if identity is not None:
        set_identity(scope, identity)
    sent = False

    async def receive() -> MutableMapping[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive)
