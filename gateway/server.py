"""The node's HTTP/1.1 server: uvicorn's httptools protocol under the mediator's rules.

The parser (llhttp) is part of what a hostile client attacks, so the mediator
answers its refusals itself instead of leaving them to uvicorn's plain-text 400:

1. A request the parser refuses, or that this module refuses before the app sees
   it (HTTP version, transfer coding, request-target form, head size, head
   deadline, connections per peer), gets the X-Road error body with the reason,
   ``Connection: close``, one message-log record (``reject_frame``) and a closed
   connection. Nothing after the refused head is ever parsed as a request.
2. A body the parser refuses after the app has started (a malformed chunk), or
   that arrives too slowly, is failed inside the app: the app's next ``receive``
   raises the :class:`~gateway.errors.FramingError`, so the exchange is answered
   and logged once, by the app, with that reason.
3. Only the transfer coding ``chunked``, alone, on HTTP/1.1 (RFC 9112 section 6.1);
   a message with both Content-Length and Transfer-Encoding is refused, never
   repaired (RFC 9112 section 6.3, request smuggling).

The rules on a parsed head and the reasons given for llhttp's refusals are
decided in :mod:`gateway.httphead`; this module applies them to connections.
A declared Content-Length over the cap is refused by the app before its first
``receive``, so no ``100 Continue`` is ever sent for it (gateway.framing).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, cast

import httptools
import orjson
from uvicorn._types import ASGI3Application
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.server import ServerState

from gateway import wire
from gateway.app import MediatorApp, reject_frame
from gateway.errors import FramingError, MediatorError, Reason, ThrottledError
from gateway.framing import PartialBodyError
from gateway.httphead import check_head, classify_parser_error, request_line
from gateway.node import Node
from gateway.settings import LimitSettings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# A request line and its slack beyond the URI cap: method, spaces, version, CRLF.
_REQUEST_LINE_SLACK = 64
# A body that keeps arriving at the minimum rate is checked again this often.
_RATE_CHECK_S = 5.0
# How long a refused connection stays open after its answer and a FIN, unless
# the client closes it first.
_LINGER_S = 1.0


class _BodyGuard:
    """Fails the app's ``receive`` once the server has refused the body."""

    def __init__(self) -> None:
        self.failure: FramingError | None = None

    def wrap(self, app: ASGIApp) -> ASGIApp:
        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            async def checked() -> Message:
                self._raise_if_failed()
                message = await receive()
                self._raise_if_failed()
                return message

            await app(scope, checked, send)

        return guarded

    def _raise_if_failed(self) -> None:
        if self.failure is not None:
            raise self.failure


class _Refusal(Exception):  # noqa: N818 (a signal out of a parser callback)
    """Raised inside a parser callback to stop parsing; the error is kept aside."""


class MediatorHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the mediator's framing, deadlines and caps.

    Pass the class as ``http=`` to :class:`uvicorn.Config` with ``ws="none"`` and the
    :class:`~gateway.app.MediatorApp` as the app: the limits come from its node.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._mediator = _mediator_of(config)
        self._head = bytearray()
        self._head_bytes = 0
        self._in_head = True
        self._in_body = False
        self._stopped = False
        self._refusal: FramingError | None = None
        self._pending: MediatorError | None = None
        self._guard = _BodyGuard()
        self._guards: dict[int, _BodyGuard] = {}
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_started = 0.0
        self._body_bytes = 0
        self._linger_timer: asyncio.TimerHandle | None = None

    # -- connection ---------------------------------------------------------------

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.Transport
    ) -> None:
        """Count the peer's connections; arm the deadline for the first request."""
        super().connection_made(transport)
        limits = self._limits()
        if self._peer_connections() > limits.max_connections_per_peer:
            self._refuse(
                ThrottledError(
                    Reason.TOO_MANY_CONCURRENT, log_reason="too_many_connections"
                )
            )
            return
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Feed the parser; every refusal is answered by this class."""
        if self._stopped:
            return
        self._unset_keepalive_if_required()
        if self._in_head:
            self._take_head(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._stop_after_response()
        except httptools.HttpParserError as exc:
            self._parser_failed(exc)
        else:
            if self._in_head and self._head_bytes > self._head_cap():
                self._refuse(FramingError(Reason.HEADERS_TOO_LARGE))

    def on_response_complete(self) -> None:
        """Start the next request, or answer a refusal that waited for it."""
        super().on_response_complete()
        if self._pending is None or self.pipeline or self.transport.is_closing():
            return
        self._unset_keepalive_if_required()
        self._cancel_head_timer()
        error, self._pending = self._pending, None
        self._start_rejection(error)

    # -- parser callbacks ---------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._guard = _BodyGuard()
        self._guards[id(self.scope)] = self._guard
        if self._head_timer is None:
            self._arm_head_timer()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self._limits().max_uri_bytes:
            self._raise_refusal(FramingError(Reason.URI_TOO_LONG))
        # A request target has no fragment (RFC 9112 section 3.2); the parser
        # would drop it and serve the rest, so the node would answer a target
        # other than the one sent.
        if b"#" in url:
            self._raise_refusal(
                FramingError(Reason.INVALID_PATH, log_reason="fragment_in_target")
            )

    def on_header(self, name: bytes, value: bytes) -> None:
        # The parser reports a chunked request's trailer fields through this
        # same callback, after the body; uvicorn would add them to the headers
        # the app reads. Identity, purpose and digests come from the header
        # section only (RFC 9110 section 6.5.1, case C04): trailers are dropped.
        if self._in_body:
            return
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        """Check the head, then let uvicorn start the app; arm the body deadline."""
        self._cancel_head_timer()
        self._in_head = False
        node = self._node()
        allowed = node.allowed_hosts if node is not None else frozenset()
        try:
            check_head(self.parser.get_http_version(), self.url, self.headers, allowed)
        except FramingError as exc:
            self._raise_refusal(exc)
        super().on_headers_complete()
        self._in_body = True
        self._body_started, self._body_bytes = time.monotonic(), 0
        self._arm_body_timer(self._limits().body_timeout_s)

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._cancel_body_timer()
        self._in_body, self._in_head = False, True
        self._head.clear()
        self._head_bytes = 0

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        guard = self._guards.pop(id(cycle.scope), None) or _BodyGuard()
        super()._start_asgi_task(cycle, cast("ASGI3Application", guard.wrap(app)))

    # -- refusals -----------------------------------------------------------------

    def _raise_refusal(self, error: FramingError) -> None:
        self._refusal = error
        raise _Refusal

    def _parser_failed(self, exc: httptools.HttpParserError) -> None:
        error, self._refusal = self._refusal, None
        if error is None:
            error = classify_parser_error(exc, bytes(self._head), in_body=self._in_body)
        if self._in_body:
            self._fail_body(error)
        else:
            self._refuse(error)

    def _fail_body(self, error: FramingError) -> None:
        """The app answers: its next ``receive`` raises ``error``, with the count of
        body bytes that arrived (the app may not have read them yet)."""
        self._stop_parsing()
        self._guard.failure = PartialBodyError(
            error.reason, self._body_bytes, error.log_reason
        )
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            self.transport.close()
            return
        cycle.keep_alive = False
        cycle.message_event.set()

    def _refuse(self, error: MediatorError) -> None:
        """Answer and log a request the app never sees, after any answer in progress."""
        self._stop_parsing()
        busy = self.cycle is not None and not self.cycle.response_complete
        if busy or self.pipeline:
            # Answered when the earlier answer is out; a stalled one closes instead.
            self._pending = error
            timeout = self._limits().header_timeout_s
            self._head_timer = self.loop.call_later(timeout, self.transport.close)
            return
        self._start_rejection(error)

    def _start_rejection(self, error: MediatorError) -> None:
        limit = self._limits().max_uri_bytes
        method, target = request_line(bytes(self._head), limit)
        task = self.loop.create_task(self._reject(error, method, target))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    async def _reject(self, error: MediatorError, method: str, target: bytes) -> None:
        node = self._node()
        peer = self.client[0] if self.client else None
        if node is None:
            status, headers, body = _unlogged(error)
        else:
            response = await reject_frame(
                node, error, peer=peer, method=method, raw_target=target
            )
            status, headers, body = (
                response.status_code,
                response.raw_headers,
                bytes(response.body),
            )
        self._write(status, headers, body)
        self._close_after_answer()

    def _close_after_answer(self) -> None:
        """Half-close, then close when the client does or after ``_LINGER_S``.

        Closing outright while the client is still sending resets the
        connection, and the reset can destroy the answer before the client has
        read it (RFC 9112 section 9.6). Meanwhile what arrives is dropped.
        """
        transport = self.transport
        if transport.is_closing() or not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        self._linger_timer = self.loop.call_later(_LINGER_S, transport.close)

    def _write(
        self, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        if self.transport.is_closing():
            return
        lines = [STATUS_LINE[status]]
        for name, value in [*self.server_state.default_headers, *headers]:
            lines.extend([name, b": ", value, b"\r\n"])
        lines.extend([b"\r\n", body])
        self.transport.write(b"".join(lines))

    def _stop_parsing(self) -> None:
        # Later bytes are still read, and dropped: a socket closed with unread
        # bytes resets the connection, and the reset can destroy the answer
        # before the client has read it (RFC 9112 section 9.6).
        self._stopped = True
        self._cancel_timers()

    def _stop_after_response(self) -> None:
        # An Upgrade or CONNECT: the rest of the stream is not HTTP/1.1 for us.
        self._stopped = True
        if self.cycle is not None:
            self.cycle.keep_alive = False

    # -- deadlines ----------------------------------------------------------------

    def _arm_head_timer(self) -> None:
        timeout = self._limits().header_timeout_s
        self._head_timer = self.loop.call_later(timeout, self._head_expired)

    def _head_expired(self) -> None:
        self._head_timer = None
        if self._stopped:
            return
        if not self._head_bytes:
            # An idle connection that never started a request: nothing to answer.
            self.transport.close()
            return
        self._refuse(FramingError(Reason.CLIENT_TIMEOUT))

    def _arm_body_timer(self, delay: float) -> None:
        self._body_timer = self.loop.call_later(delay, self._body_expired)

    def _body_expired(self) -> None:
        self._body_timer = None
        limits = self._limits()
        elapsed = time.monotonic() - self._body_started
        if self._body_bytes >= limits.body_min_rate * elapsed:
            self._arm_body_timer(min(_RATE_CHECK_S, limits.body_timeout_s))
            return
        self._fail_body(FramingError(Reason.CLIENT_TIMEOUT))

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _cancel_timers(self) -> None:
        self._cancel_head_timer()
        self._cancel_body_timer()

    # -- helpers ------------------------------------------------------------------

    def _node(self) -> Node | None:
        return self._mediator.node if self._mediator is not None else None

    def _limits(self) -> LimitSettings:
        node = self._node()
        return node.deployment.settings.limits if node is not None else LimitSettings()

    def _head_cap(self) -> int:
        limits = self._limits()
        return limits.max_header_bytes + limits.max_uri_bytes + _REQUEST_LINE_SLACK

    def _take_head(self, data: bytes) -> None:
        self._head_bytes += len(data)
        room = self._head_cap() - len(self._head)
        if room > 0:
            self._head += data[:room]

    def _peer_connections(self) -> int:
        peer = self.client[0] if self.client else None
        return sum(
            1
            for other in self.connections
            if isinstance(other, MediatorHttpProtocol)
            and other.client is not None
            and other.client[0] == peer
        )


def _unlogged(error: MediatorError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The error answer while no node is running (nothing to log to)."""
    body = orjson.dumps({"type": error.type, "message": error.message, "detail": ""})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (wire.XROAD_ERROR.lower().encode(), error.type.encode()),
        (b"connection", b"close"),
    ]
    return error.status, headers, body


def _mediator_of(config: Config) -> MediatorApp | None:
    """The node's app behind ``config``: an instance, or what a factory made.

    uvicorn calls an app factory (``gateway.app:app_from_env`` in each worker)
    in ``Config.load()``; ``config.app`` is then the import string, and only
    ``loaded_app``, under any middleware uvicorn added, is the node's app.
    """
    app: Any = config.loaded_app if config.loaded else config.app
    while app is not None and not isinstance(app, MediatorApp):
        app = getattr(app, "app", None)
    return app


def server_options() -> dict[str, Any]:
    """The uvicorn options every node runs with, wherever it is started.

    The protocol above answers framing refusals; no WebSocket hand-over (an
    Upgrade is an ordinary exchange); X-Forwarded-* never trusted, so the client
    address is the TCP peer unless the node's own trusted-proxy rule says
    otherwise (cases C14, C16).
    """
    return {
        "loop": "uvloop",
        "http": MediatorHttpProtocol,
        "ws": "none",
        "proxy_headers": False,
        "access_log": False,
        "log_level": "warning",
        "server_header": False,
        "date_header": True,
        "timeout_keep_alive": 5,
        "limit_concurrency": 1000,
    }
