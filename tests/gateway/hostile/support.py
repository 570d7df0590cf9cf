"""Helpers for the hostile-input tests: raw requests through the node, and a tiny
scripted provider on 127.0.0.1 that signs what it sends as the registry does."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import orjson
import uvicorn

from gateway.identifiers import ClientId, ServiceId
from gateway.keyring import SigningKey
from gateway.server import server_options
from gateway.signing import sign_response
from gateway.upstream import make_client
from tests.gateway.conftest import KANYASHREE, SABOOJSATHI, Harness

BANGLARSHIKSHA = ClientId("WB", "GOV", "SED", "banglarshiksha")
STUDENTS = ServiceId(BANGLARSHIKSHA, "students")
SCHOOLS = ServiceId(BANGLARSHIKSHA, "schools")

__all__ = ["KANYASHREE", "SABOOJSATHI", "SCHOOLS", "STUDENTS"]


def auth_headers(harness: Harness, client: ClientId, **extra: str) -> dict[str, str]:
    """A fresh assertion and the matching X-Road-Client header."""
    headers = {
        "authorization": f"Bearer {harness.client(client).assertion()}",
        "x-road-client": str(client),
    }
    headers.update(extra)
    return headers


@dataclasses.dataclass(frozen=True)
class Reply:
    """What the node answered to one raw ASGI request."""

    status_code: int
    headers: httpx.Headers
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


async def send(
    harness: Harness,
    method: str,
    path: str,
    *,
    client: ClientId | None = SABOOJSATHI,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    peer: str = "127.0.0.1",
) -> Reply:
    """One request to ``/r1{path}``, handed to the app exactly as written (no
    client library normalises the path or checks the header values)."""
    fields = auth_headers(harness, client) if client is not None else {}
    fields.setdefault("host", httpx.URL(harness.demo.mediator_url).netloc.decode())
    fields.update(headers or {})
    if body:
        fields.setdefault("content-length", str(len(body)))
    return await asgi(
        harness, method, f"/r1{path}".encode("latin-1"), fields, body or b"", peer=peer
    )


async def send_fields(
    harness: Harness,
    client: ClientId,
    method: str,
    path: str,
    fields: list[tuple[str, str]],
) -> Reply:
    """One request to ``/r1{path}`` with ``fields`` after the client's credentials,
    each kept as written (repeated names and name case too); a POST carries a
    small JSON body."""
    headers = list(auth_headers(harness, client).items())
    headers.append(("host", harness.demo.mediator_url.removeprefix("http://")))
    body = b'{"student_id": "WB20190000001"}' if method == "POST" else b""
    if body:
        headers.append(("content-length", str(len(body))))
    return await asgi(harness, method, f"/r1{path}".encode(), headers + fields, body)


async def asgi(
    harness: Harness,
    method: str,
    raw_path: bytes,
    headers: dict[str, str] | list[tuple[str, str]],
    body: bytes,
    *,
    peer: str = "127.0.0.1",
    disconnect: bool = False,
) -> Reply:
    """Call the node's ASGI app directly with a raw path, query and header bytes;
    with ``disconnect`` the client goes away after the first part of the body."""
    path, _, query = raw_path.partition(b"?")
    items = headers.items() if isinstance(headers, dict) else headers
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path.decode("latin-1"),
        "raw_path": path,
        "query_string": query,
        "headers": [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in items
        ],
        "client": (peer, 40000),
        "server": ("127.0.0.1", 8700),
    }
    messages = [{"type": "http.request", "body": body, "more_body": disconnect}]
    if disconnect:
        messages.append({"type": "http.disconnect"})
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send_(message: dict[str, Any]) -> None:
        sent.append(message)

    await harness.app(scope, receive, send_)
    start = next(
        (m for m in sent if m["type"] == "http.response.start"),
        {"status": 0, "headers": []},
    )
    raw = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in start["headers"]]
    content = b"".join(
        m.get("body", b"") for m in sent if m["type"] == "http.response.body"
    )
    return Reply(start["status"], httpx.Headers(raw), content)


def signed_answer(
    key: SigningKey,
    status: int,
    body: bytes,
    *,
    headers: dict[str, str] | None = None,
    signed_body: bytes | None = None,
    extra: bytes = b"",
) -> bytes:
    """Raw HTTP/1.1 response bytes signed with ``key`` over ``signed_body``."""
    fields = {"content-type": "application/json", **(headers or {})}
    signed = body if signed_body is None else signed_body
    fields.update(sign_response(key, status=status, headers=fields, body=signed))
    fields.setdefault("content-length", str(len(body)))
    head = f"HTTP/1.1 {status} X\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in fields.items()
    )
    return head.encode("latin-1") + b"\r\n" + body + extra


Script = Callable[[bytes, asyncio.StreamWriter], Awaitable[None]]


@dataclasses.dataclass
class Provider:
    """A scripted provider: ``requests`` holds each request head it read."""

    port: int
    requests: list[bytes]
    connections: int = 0


@contextlib.asynccontextmanager
async def provider(script: Script) -> AsyncIterator[Provider]:
    """Serve ``script`` on 127.0.0.1; it gets each request's bytes and the writer."""
    state = Provider(0, [])

    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        state.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = _content_length(head)
                body = await reader.readexactly(length) if length else b""
                state.requests.append(head + body)
                await script(head + body, writer)
                if writer.is_closing():
                    return
        except (
            asyncio.IncompleteReadError,
            ConnectionError,
            asyncio.LimitOverrunError,
        ):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 1)


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


def route_to(harness: Harness, monkeypatch: Any, port: int, **settings: Any) -> None:
    """Point the students and schools services at 127.0.0.1:``port`` over real
    sockets, through the node's own provider client."""
    directory = harness.node.deployment.directory
    services = directory._services
    for service_id in (STUDENTS, SCHOOLS):
        service = services[service_id]
        url = f"http://127.0.0.1:{port}/api/{service_id.code}"
        monkeypatch.setitem(services, service_id, dataclasses.replace(service, url=url))
    upstream_settings = harness.node.deployment.settings.upstream.model_copy(
        update=settings
    )
    upstream = harness.node.upstream
    monkeypatch.setattr(upstream, "_client", make_client(upstream_settings))
    monkeypatch.setattr(upstream, "_settings", upstream_settings)


PURPOSE = "kanyashree-eligibility"


async def consented_applicant(harness: Harness) -> dict[str, Any]:
    """A Kanyashree request body for a girl whose guardian consented."""
    import time

    from registry_stub.seed import sample_students

    (girl,) = sample_students(
        harness.demo.registry_db, gender="F", classes=range(8, 13), limit=1
    )
    purpose = harness.node.deployment.policies.purposes.get(PURPOSE)
    if purpose is None:
        raise LookupError(PURPOSE)
    now = time.time()
    await harness.node.consents.grant(
        subject=girl["student_id"],
        client=KANYASHREE,
        purpose=purpose,
        granted_by_role="guardian",
        granted_by_name="Guardian Name",
        subject_is_minor=True,
        valid_from=now - 60,
        valid_until=now + 3600,
        actor="test",
    )
    year, month, day = girl["date_of_birth"].split("-")
    return {
        "applicant": {
            "registry_uid": girl["student_id"],
            "dob": f"{day}/{month}/{year}",
        },
        "scheme_year": "2026-27",
    }


async def verify(harness: Harness, body: bytes, **headers: str) -> Reply:
    """POST ``body`` to the Kanyashree verify-enrolment endpoint as Kanyashree."""
    fields = {
        "x-road-purpose": PURPOSE,
        "content-type": "application/json",
        **{k.replace("_", "-"): v for k, v in headers.items()},
    }
    return await send(
        harness,
        "POST",
        f"/{STUDENTS}/verify-enrolment",
        client=KANYASHREE,
        headers=fields,
        body=body,
    )


class Spy:
    """Records what the node hands its provider client."""

    def __init__(self, harness: Harness, monkeypatch: Any) -> None:
        self.calls: list[tuple[str, str, dict[str, str], bytes]] = []
        original = harness.node.upstream.send

        async def spy(
            method: str, url: str, headers: Any, body: bytes, **kwargs: Any
        ) -> Any:
            self.calls.append((method, url, dict(headers), body))
            return await original(method, url, headers, body, **kwargs)

        monkeypatch.setattr(harness.node.upstream, "send", spy)


async def outcome(harness: Harness, reply: Reply) -> dict[str, Any]:
    """The record that says how the exchange behind ``reply`` ended.

    A forwarded exchange may also have a request record under the same message
    id; the outcome is the record that is not that one.
    """
    message_id = reply.headers["x-road-id"]
    (record,) = [
        r
        for r in await harness.records()
        if r["message_id"] == message_id and r.get("direction") != "request"
    ]
    return record


@contextlib.asynccontextmanager
async def serving(
    harness: Harness, capacity: int | None = None, *, wait_s: float = 30.0
) -> AsyncIterator[int]:
    """The node behind its real HTTP server on 127.0.0.1; yields the port.

    ``capacity`` caps the server's concurrent connections (uvicorn's
    ``limit_concurrency``).
    """
    options: dict[str, Any] = {**server_options(), "limit_concurrency": capacity}
    server = uvicorn.Server(uvicorn.Config(harness.app, lifespan="off", **options))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(wait_s):
            for _ in itertools.count():
                if server.started:
                    break
                await asyncio.sleep(0.01)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task
        sock.close()
