"""The node's ASGI application, built by a factory from a loaded deployment.

``/r1/...`` is the exchange surface (X-Road REST); ``/.well-known/jwks.json``
publishes the node's public keys; ``/admin/...`` is the admin surface
(:mod:`gateway.admin`: health for load balancers, metrics, the admin API). Every
request under ``/r1`` and every unknown path gets exactly one final message-log
record; a forwarded exchange also has the request record of step 8 before it.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Mapping,
    MutableMapping,
)
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import structlog
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response

from gateway import wire
from gateway.admin import handle_admin
from gateway.admin.config import watch_reload_signal
from gateway.admin.surface import error_response
from gateway.clientip import client_address
from gateway.deployment import Deployment, check_workers, load_deployment
from gateway.errors import (
    AccessDeniedError,
    AuthenticationError,
    ConfigError,
    FramingError,
    MediatorError,
    NodeError,
    Reason,
    ResolutionError,
    ThrottledError,
    UpstreamError,
)
from gateway.exchange import Inbound, Outbound
from gateway.framing import (
    PartialBodyError,
    check_client_digest,
    check_forwarded_ascii,
    check_host,
    check_method,
    client_request_id,
    declared_body,
    declared_length,
    method_not_allowed,
    parse_headers,
    read_body,
)
from gateway.logsafe import escape, log_path, redact_numbers
from gateway.metaservices import metaservice_of
from gateway.node import Node, freeze_long_lived
from gateway.observability import configure_logging
from gateway.record import Decision, ExchangeRecord, sha256_hex
from gateway.secrets import Secret
from gateway.signing import sign_response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = structlog.get_logger("gateway.exchange")


@dataclass(slots=True)
class Answer:
    """An answer as the server sends it: status, header fields and body.

    Starlette's ``Response`` does the same with more generality than an exchange
    needs, at several times the cost; the rules for ``content-length`` are its.
    """

    status_code: int
    raw_headers: list[tuple[bytes, bytes]]
    body: bytes

    @classmethod
    def of(
        cls, status: int, headers: Mapping[str, str], body: bytes, *, head: bool = False
    ) -> Answer:
        """The answer with its ``content-length``; none for an answer to HEAD.

        A HEAD answer may only state the length a GET would carry (RFC 9110
        section 8.6), which the node does not know once it releases or maps a
        body, so it states none rather than the 0 of the empty body it sends.
        """
        raw = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in headers.items()
            if not (head and name.lower() == "content-length")
        ]
        bodiless = head or status < 200 or status in (204, 304)
        if not bodiless and all(name != b"content-length" for name, _ in raw):
            raw.append((b"content-length", str(len(body)).encode("ascii")))
        return cls(status, raw, body)

    async def __call__(self, _scope: Scope, _receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": self.status_code,
                "headers": self.raw_headers,
            }
        )
        await send({"type": "http.response.body", "body": self.body})


def create_app(
    deployment: Deployment,
    *,
    http_client: httpx.AsyncClient | None = None,
    passphrase: Secret | None = None,
    reload_on_sighup: bool = False,
    freeze_gc: bool = False,
) -> MediatorApp:
    """The ASGI app of one node; its lifespan starts and stops the node's services.

    With ``reload_on_sighup`` (``mediator serve``) SIGHUP reloads the configuration.
    With ``freeze_gc`` (the processes that serve) the objects alive once the node
    has started are frozen: see :func:`gateway.node.freeze_long_lived`.
    """
    mediator = MediatorApp()

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        node = await Node.start(
            deployment, http_client=http_client, passphrase=passphrase
        )
        mediator.node = node
        unwatch = watch_reload_signal(node) if reload_on_sighup else None
        if freeze_gc:
            freeze_long_lived()
        try:
            yield
        finally:
            if freeze_gc:
                gc.unfreeze()
            if unwatch is not None:
                unwatch()
            mediator.node = None
            await node.stop()

    mediator.lifespan_app = Starlette(lifespan=lifespan)
    return mediator


def app_from_env() -> MediatorApp:
    """The app of the node that ``MEDIATOR_CONFIG`` (and ``MEDIATOR_STATE_DIR``) name.

    The factory of each worker process of ``mediator serve --workers N``, which
    gives uvicorn the node's HTTP protocol and options
    (:func:`gateway.server.server_options`); a bare ``uvicorn --factory`` would
    run without them. ``MEDIATOR_WORKERS`` says how many processes share the
    node (a process that uvicorn's supervisor started counts as one of at least
    two), and they must share Redis and a PostgreSQL log
    (:func:`gateway.deployment.check_workers`). Logging is set to
    ``MEDIATOR_LOG_LEVEL`` (default info).

    :raises ConfigError: the deployment does not load, or its processes would
        not share what they must.
    """
    configure_logging(os.environ.get("MEDIATOR_LOG_LEVEL", "info"))
    config_dir = Path(os.environ.get("MEDIATOR_CONFIG", "config"))
    deployment = load_deployment(config_dir)
    check_workers(deployment.settings, worker_count())
    return create_app(deployment, freeze_gc=True)


def worker_count() -> int:
    """How many processes serve this node: ``MEDIATOR_WORKERS`` (default 1), and
    at least 2 in a process that a multiprocessing parent (uvicorn's
    supervisor) started.

    :raises ConfigError: ``MEDIATOR_WORKERS`` is not a whole number from 1.
    """
    declared = os.environ.get("MEDIATOR_WORKERS", "").strip() or "1"
    if not (declared.isascii() and declared.isdigit()) or int(declared) < 1:
        raise ConfigError("MEDIATOR_WORKERS", "must be a whole number from 1")
    # A process a supervisor started has siblings, whatever the variable says.
    supervised = multiprocessing.parent_process() is not None
    return max(int(declared), 2 if supervised else 1)


def app_for_node(node: Node) -> MediatorApp:
    """The ASGI app over a node that the caller started and will stop."""
    mediator = MediatorApp()
    mediator.node = node
    return mediator


class MediatorApp:
    """Routes ``/r1`` and unknown paths to the exchange handler, and serves the
    node's public keys and health."""

    def __init__(self) -> None:
        self.node: Node | None = None
        self.lifespan_app: Starlette | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            if self.lifespan_app is not None:
                await self.lifespan_app(scope, receive, send)
            return
        if scope["type"] != "http":
            return
        node = self.node
        if node is None:
            await _unavailable(scope, receive, send)
            return
        path: str = scope["path"]
        if path == "/.well-known/jwks.json":
            await _keys_page(node, scope)(scope, receive, send)
        elif path == "/admin" or path.startswith("/admin/"):
            await handle_admin(node, scope, receive, send)
        else:
            # Counted, so that maintenance can tell when running exchanges are done.
            node.ops.maintenance.in_flight += 1
            try:
                await handle_exchange(node, scope, receive, send)
            finally:
                node.ops.maintenance.in_flight -= 1


async def handle_exchange(
    node: Node, scope: Scope, receive: Receive, send: Send
) -> None:
    """Steps 1, 11 and 12 around the pipeline: frame, sign the answer, log, answer."""
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    query: bytes = scope.get("query_string", b"")
    client = scope.get("client")
    record = ExchangeRecord(
        node_id=node.deployment.settings.node_id,
        method=str(scope["method"])[:16],
        path=log_path(raw_path + (b"?" + query if query else b"")),
        peer=client[0] if client else None,
    )
    aborted = False
    try:
        outbound = await _run(
            node, scope, receive, raw_path, query=query, record=record
        )
    except MediatorError as exc:
        aborted = exc.reason is Reason.CLIENT_ABORTED
        outbound = _failure(exc, record)
    except Exception as exc:  # noqa: BLE001 (last resort: a defect answers 500)
        # Only the type: a traceback or message could carry request values.
        log.error("exchange.defect", error=type(exc).__name__, step=record.step)  # noqa: TRY400
        outbound = _failure(MediatorError(Reason.INTERNAL_ERROR), record)
        record.reason = f"defect_{type(exc).__name__}"[:64]

    response = await _log_and_answer(node, outbound, record)
    if not aborted:
        await response(scope, receive, send)


async def _log_and_answer(
    node: Node, outbound: Outbound, record: ExchangeRecord
) -> Answer:
    """Steps 11 and 12: sign the answer, make the record durable, then observe it.

    Raises nothing: a log that cannot be written turns the answer into
    ``log_unavailable``, so no answer leaves unlogged.
    """
    response = _finish(node, outbound, record)
    record.enter("log")
    try:
        # A request logged in step 8 has its body in its own record.
        request_body = None if record.request_logged else record.request_body
        bodies = (request_body, record.response_body)
        await node.log.append(record.to_log(), bodies=bodies)
    except NodeError as exc:
        record.decision, record.reason = Decision.NODE_ERROR, exc.log_reason
        response = _finish(node, _failure(exc, record), record)
    record.enter("send")
    log.info("exchange", **record.to_event())
    node.ops.observe(record)
    return response


async def reject_frame(
    node: Node,
    error: MediatorError,
    *,
    peer: str | None,
    method: str,
    raw_target: bytes,
) -> Answer:
    """Log a request the HTTP server refused before the app saw it; its answer.

    One record (decision ``rejected``, nothing forwarded) and the signed X-Road
    error response, which closes the connection. ``method`` and ``raw_target`` are
    what the server could read of the request line, stored escaped. Raises nothing:
    a log that cannot be written turns the answer into ``log_unavailable``.
    """
    record = ExchangeRecord(
        node_id=node.deployment.settings.node_id,
        method=method[:16],
        path=log_path(raw_target),
        peer=peer,
    )
    # No header was read: the last hop stands, as for a request without XFF.
    trusted = node.deployment.settings.trusted_proxies
    record.client_ip = client_address(peer, [], trusted).ip
    response = await _log_and_answer(node, _failure(error, record), record)
    headers = [h for h in response.raw_headers if h[0] != b"connection"]
    response.raw_headers = [*headers, (b"connection", b"close")]
    return response


async def _run(
    node: Node,
    scope: Scope,
    receive: Receive,
    raw_path: bytes,
    *,
    query: bytes,
    record: ExchangeRecord,
) -> Outbound:
    # Step 1: frame.
    limits = node.deployment.settings.limits
    if len(raw_path) + len(query) > limits.max_uri_bytes:
        raise FramingError(Reason.URI_TOO_LONG)
    method = record.method
    check_method(method)
    headers = parse_headers(scope["headers"], limits.max_header_bytes)
    check_forwarded_ascii(headers, wire.FORWARDED_REQUEST_HEADERS)
    request_id = client_request_id(headers)
    if request_id is not None:
        record.request_id = request_id
    address = client_address(
        record.peer,
        headers.get_all("x-forwarded-for"),
        node.deployment.settings.trusted_proxies,
    )
    record.client_ip, record.claimed_forwarded_for = address.ip, address.claimed
    # X-Road-UserId names the person at the client, as the client says: kept for
    # monitoring and the record, escaped, never used for a decision.
    user = headers.get(wire.XROAD_USER_ID)
    record.user_id = redact_numbers(escape(user, 64)) if user else None
    check_host(headers, node.allowed_hosts)
    record.declared_length = declared_length(headers)
    try:
        body = await read_body(receive, method, headers, limits.max_body_bytes)
    except PartialBodyError as exc:
        record.request_bytes = exc.bytes_read
        raise
    record.request_bytes = len(body)
    record.request_body = body
    record.request_body_sha256 = sha256_hex(body) if body else None
    record.client_digest_verified = check_client_digest(headers, body)
    metaservice = metaservice_of(raw_path)
    if not raw_path.startswith(b"/r1/") and metaservice is None:
        # Not the exchange surface: nothing here for any client, signed in or not.
        raise ResolutionError(Reason.UNKNOWN_SERVICE, log_reason="not_an_exchange_path")
    if node.ops.maintenance.on:
        raise NodeError(Reason.MAINTENANCE)
    if not node.log.available:
        raise NodeError(Reason.LOG_UNAVAILABLE)
    inbound = Inbound(method, raw_path, query, headers, body, address.ip)
    if metaservice is not None:
        return await node.ops.metaservices().run(inbound, record)
    return await node.pipeline.run(inbound, record)


def _failure(exc: MediatorError, record: ExchangeRecord) -> Outbound:
    record.decision = _decision(exc)
    record.reason = exc.log_reason
    body = orjson.dumps(
        {"type": exc.type, "message": exc.message, "detail": record.message_id}
    )
    headers = {wire.CONTENT_TYPE: "application/json", wire.XROAD_ERROR: exc.type}
    headers.update(exc.headers)
    if isinstance(exc, FramingError):
        headers["connection"] = "close"
    return Outbound(exc.status, headers, body, None)


def _decision(exc: MediatorError) -> Decision:
    if isinstance(exc, AuthenticationError | AccessDeniedError | ThrottledError):
        return Decision.DENIED
    if isinstance(exc, UpstreamError):
        return Decision.UPSTREAM_ERROR
    if isinstance(exc, NodeError) or exc.reason is Reason.INTERNAL_ERROR:
        return Decision.NODE_ERROR
    return Decision.REJECTED


def _finish(node: Node, outbound: Outbound, record: ExchangeRecord) -> Answer:
    """Step 11: the response with X-Road headers, signed by the node's active key."""
    record.enter("sign")
    headers = dict(outbound.headers)
    headers[wire.XROAD_ID] = record.message_id
    headers[wire.XROAD_REQUEST_ID] = record.request_id
    request_hash = node.pipeline.response_request_hash(outbound)
    if request_hash is not None:
        headers[wire.XROAD_REQUEST_HASH] = request_hash
    record.status = outbound.status
    record.response_body_sha256 = sha256_hex(outbound.body)
    record.response_bytes = len(outbound.body)
    record.response_body = outbound.body
    try:
        key = node.keyring.active()
        headers.update(
            sign_response(
                key, status=outbound.status, headers=headers, body=outbound.body
            )
        )
        record.response_signature_kid = key.kid
    except NodeError:
        record.reason = record.reason or "response_unsigned"
    return Answer.of(
        outbound.status, headers, outbound.body, head=record.method == "HEAD"
    )


def _keys_page(node: Node, scope: Scope) -> Response:
    """The node's public keys, or the refusal of a request that cannot read them."""
    try:
        _check_page_request(node, scope)
    except FramingError as exc:
        return error_response(exc)
    return _jwks(node)


def _check_page_request(node: Node, scope: Scope) -> None:
    """Raise FramingError unless ``scope`` is a GET or HEAD without a body: 405,
    or 400 ``body_not_allowed``, as on the admin surface's pages."""
    if scope["method"] not in ("GET", "HEAD"):
        raise method_not_allowed(("GET", "HEAD"))
    limits = node.deployment.settings.limits
    declared_body(
        scope["method"], parse_headers(scope["headers"], limits.max_header_bytes)
    )


def _jwks(node: Node) -> Response:
    # A quarter of the lead time (at most 5 min): a pending key is seen by relying
    # parties at least three quarters of the lead time before it signs.
    lead = node.deployment.settings.keyring.lead_time_s
    cache = f"public, max-age={min(300, lead // 4)}, must-revalidate"
    return JSONResponse(node.keyring.jwks(), headers={"cache-control": cache})


async def _unavailable(scope: Scope, receive: Receive, send: Send) -> None:
    error = MediatorError(Reason.MAINTENANCE)
    body = {"type": error.type, "message": error.message, "detail": ""}
    response = JSONResponse(body, status_code=error.status)
    response.headers[wire.XROAD_ERROR] = error.type
    await response(scope, receive, send)
