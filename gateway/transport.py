"""The node's httpx transport to providers, over one pooled aiohttp session.

httpx's default transport cost 1.5-2.4 ms of CPU per proxied request, so the
provider client runs over aiohttp. The transport is the node's own rather than
``httpx_aiohttp``'s because a provider call needs three things that one does not
give:

- a connection that carried a HEAD, 204 or 304 response is closed, never pooled:
  a provider that writes a body after such a response would otherwise have its
  stray bytes read as the answer to the next exchange on that connection, which
  may belong to another client (response desync, C06); bytes that arrive in the
  same segment as such a head are dropped and reported (:attr:`ProviderAnswer.stray`),
  never parsed as a second answer that would fail the first;
- failures are told apart by phase (no answer yet, or a body cut short), and no
  library text, address or body byte reaches an error;
- a retry can ask for a fresh connection (:data:`FRESH_CONNECTION`) instead of
  another pooled one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Iterator
from typing import Any, Final

import aiohttp
import httpx
from aiohttp.client_proto import ResponseHandler
from aiohttp.connector import Connection
from aiohttp.http import RawResponseMessage
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader

from gateway.settings import UpstreamSettings

#: Request extension that makes :class:`ProviderTransport` open a new connection.
FRESH_CONNECTION: Final = "mediator.fresh_connection"
#: Statuses whose responses never have a body (RFC 9110 sections 15.3.5, 15.4.5).
BODYLESS_STATUS: Final = frozenset({204, 304})
#: Response extension set when bytes followed a bodyless answer and were dropped.
STRAY_BYTES: Final = "mediator.stray_bytes"

_CHUNK: Final = 64 * 1024
_FRAMED_BY_AIOHTTP: Final = frozenset(
    {"connection", "keep-alive", "content-length", "transfer-encoding"}
)
# The end of a response head (RFC 9112 section 2.1).
_HEAD_END: Final = b"\r\n\r\n"


class MalformedResponseError(httpx.RemoteProtocolError):
    """The provider's answer could not be parsed as HTTP."""


class ProviderTransport(httpx.AsyncBaseTransport):
    """An httpx transport over one pooled aiohttp session, for provider calls.

    Raises httpx's exceptions with fixed text: ``ConnectError``,
    ``ConnectTimeout``, ``ReadTimeout``, ``RemoteProtocolError`` (closed before an
    answer), ``ReadError`` (reset, or a body cut short),
    :class:`MalformedResponseError` and ``UnsupportedProtocol``.
    """

    def __init__(self, settings: UpstreamSettings) -> None:
        self._settings = settings
        self._pooled: aiohttp.ClientSession | None = None
        self._fresh: aiohttp.ClientSession | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send one request and return the response with its body still unread."""
        timeout = request.extensions.get("timeout", {})
        headers = [
            (name, value)
            for name, value in request.headers.multi_items()
            if name not in _FRAMED_BY_AIOHTTP
        ]
        answer = await self.open(
            request.method,
            str(request.url),
            headers,
            await request.aread(),
            timeouts=aiohttp.ClientTimeout(
                connect=timeout.get("pool"),
                sock_connect=timeout.get("connect"),
                sock_read=timeout.get("read"),
            ),
            fresh=bool(request.extensions.get(FRESH_CONNECTION)),
        )
        stream: httpx.AsyncByteStream = (
            httpx.ByteStream(b"") if answer.bodyless else _ResponseBody(answer)
        )
        return httpx.Response(
            answer.status,
            headers=list(answer.raw_headers),
            stream=stream,
            request=request,
            extensions={STRAY_BYTES: True} if answer.stray else {},
        )

    async def open(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        timeouts: aiohttp.ClientTimeout,
        fresh: bool = False,
    ) -> ProviderAnswer:
        """Send one request without building httpx objects; the body stays unread.

        The lean path :class:`gateway.upstream.Upstream` takes for a client made
        by ``make_client``: the same sessions, framing and error translation as
        :meth:`handle_async_request`, which calls it. ``headers`` must not hold
        framing headers (aiohttp frames from ``body``). Raises httpx's exceptions
        as the class says.
        """
        session = self._session(fresh=fresh)
        with _translated():
            response = await session.request(
                method,
                url,
                headers=headers,
                data=body or None,
                allow_redirects=False,
                timeout=timeouts,
            )
        bodyless = method == "HEAD" or response.status in BODYLESS_STATUS
        if bodyless:
            response.close()
        stray = isinstance(response, _ProviderResponse) and response.stray
        return ProviderAnswer(response, bodyless=bodyless, stray=stray)

    async def aclose(self) -> None:
        """Close both sessions and their connections."""
        for session in (self._pooled, self._fresh):
            if session is not None:
                await session.close()

    def _session(self, *, fresh: bool) -> aiohttp.ClientSession:
        # Sessions need a running loop, so they are made on first use.
        if fresh:
            if self._fresh is None:
                self._fresh = self._new_session(force_close=True)
            return self._fresh
        if self._pooled is None:
            self._pooled = self._new_session(force_close=False)
        return self._pooled

    def _new_session(self, *, force_close: bool) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._settings.pool_size,
            keepalive_timeout=None if force_close else self._settings.keepalive_s,
            force_close=force_close,
        )
        # aiohttp has no public hook for the protocol its connections use.
        connector._factory = functools.partial(
            _one_answer_protocol, asyncio.get_running_loop()
        )
        session = aiohttp.ClientSession(
            connector=connector,
            response_class=_ProviderResponse,
            auto_decompress=False,
            trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("accept", "accept-encoding", "user-agent"),
        )
        # Upstream.send decides on retries and counts attempts; aiohttp would
        # otherwise also retry PUT and DELETE on a closed pooled connection.
        session._retry_connection = False
        return session


class _OneAnswerProtocol(ResponseHandler):
    """A provider connection that reads one answer per request, and nothing after.

    aiohttp's parser reads each segment to its end, so bytes a provider writes in
    the same segment as a HEAD, 204 or 304 head would be parsed as a second answer,
    and their parse error would fail the genuine first one. This protocol hands
    the parser a response head on its own; once a bodyless answer is complete,
    or once a second final answer shows up for one request, every later byte is
    dropped, :attr:`stray` is set and the connection is never pooled again (C06).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.stray = False
        self._reading_head = True
        self._complete = False
        # The last bytes of a head so far: its end may straddle two segments.
        self._head_tail = b""

    def set_response_params(self, **params: Any) -> None:
        """Start reading the answer to a new request."""
        self.stray = False
        self._reading_head, self._complete, self._head_tail = True, False, b""
        super().set_response_params(**params)

    def data_received(self, data: bytes) -> None:
        if self._complete:
            if data:
                self._drop_stray()
            return
        if not self._reading_head or self._parser is None:
            super().data_received(data)
            return
        seen = self._head_tail + data
        end = seen.find(_HEAD_END)
        if end < 0:
            self._head_tail = seen[-(len(_HEAD_END) - 1) :]
            super().data_received(data)
            return
        cut = end + len(_HEAD_END) - len(self._head_tail)
        self._head_tail = b""
        super().data_received(data[:cut])
        if len(data) > cut:
            self.data_received(data[cut:])

    def feed_data(
        self, data: tuple[RawResponseMessage, StreamReader], size: int = 0
    ) -> None:
        """Queue the request's one final answer; drop any other (RFC 9110 15)."""
        message, payload = data
        if not self._reading_head:
            self._drop_stray()
            return
        if 100 <= message.code < 200 and message.code != 101:
            # An interim answer: the final head follows.
            super().feed_data(data, size)
            return
        self._reading_head = False
        self._complete = payload is EMPTY_PAYLOAD
        super().feed_data(data, size)

    def _drop_stray(self) -> None:
        self.stray = True
        self.force_close()


def _one_answer_protocol(loop: asyncio.AbstractEventLoop) -> ResponseHandler:
    return _OneAnswerProtocol(loop)


class _ProviderResponse(aiohttp.ClientResponse):
    """A response whose connection is closed, never pooled, if it has no body.

    aiohttp pools the connection as soon as a HEAD, 204 or 304 answer's head is
    read; bytes the provider writes after it would then be read as the answer to
    the next request on that connection (response desync, C06).
    """

    #: True when bytes after a bodyless answer arrived with it and were dropped.
    stray = False

    async def start(self, connection: Connection) -> aiohttp.ClientResponse:
        protocol = connection.protocol
        await super().start(connection)
        # No await since the connection went back to the pool: nobody took it yet.
        bodyless = self.method == "HEAD" or self.status in BODYLESS_STATUS
        if isinstance(protocol, _OneAnswerProtocol):
            self.stray = protocol.stray
        if bodyless and protocol is not None:
            protocol.close()
        return self


class ProviderAnswer:
    """A provider's status and headers, with the body still to be read.

    ``bodyless`` answers (to HEAD, or 204 and 304) have their connection closed
    already and yield no chunk; ``stray`` says that bytes arrived after such an
    answer and were dropped.
    """

    __slots__ = ("_response", "bodyless", "status", "stray")

    def __init__(
        self, response: aiohttp.ClientResponse, *, bodyless: bool, stray: bool = False
    ) -> None:
        self._response = response
        self.status = response.status
        self.bodyless = bodyless
        self.stray = stray

    @property
    def raw_headers(self) -> tuple[tuple[bytes, bytes], ...]:
        """The header fields as received, names in their original case."""
        return self._response.raw_headers

    def headers(self) -> list[tuple[str, str]]:
        """Lower-case names and decoded values, in the order received, decoded
        as httpx decodes them (ASCII, else UTF-8, else ISO-8859-1)."""
        raw = self._response.raw_headers
        encoding = _header_encoding(raw)
        return [
            (name.decode(encoding).lower(), value.decode(encoding))
            for name, value in raw
        ]

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; raises httpx's ``ReadError``/``ReadTimeout``."""
        if self.bodyless:
            return
        with _translated(reading=True):
            async for chunk in self._response.content.iter_chunked(_CHUNK):
                yield chunk

    async def aclose(self) -> None:
        """Pool the connection if the body was read to its end, else close it."""
        self._response.release()


def _header_encoding(raw: tuple[tuple[bytes, bytes], ...]) -> str:
    for encoding in ("ascii", "utf-8"):
        try:
            for name, value in raw:
                name.decode(encoding)
                value.decode(encoding)
        except UnicodeDecodeError:
            continue
        return encoding
    return "iso-8859-1"


class _ResponseBody(httpx.AsyncByteStream):
    def __init__(self, answer: ProviderAnswer) -> None:
        self._answer = answer

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._answer.chunks():
            yield chunk

    async def aclose(self) -> None:
        # Pools the connection only if the body was read to its end.
        await self._answer.aclose()


@contextlib.contextmanager
def _translated(*, reading: bool = False) -> Iterator[None]:
    """Translate aiohttp's exceptions into httpx's, with fixed text."""
    try:
        yield
    except (aiohttp.ClientError, TimeoutError) as exc:
        # ``from None``: aiohttp's text names the provider's address, or quotes
        # the bytes it could not parse.
        raise _httpx_error(exc, reading=reading) from None


#: aiohttp's failures before an answer, most specific first, as httpx's.
_AIOHTTP_ERRORS: Final[
    tuple[tuple[type[BaseException], type[httpx.TransportError], str], ...]
] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout, "timed out connecting"),
    (TimeoutError, httpx.ReadTimeout, "timed out waiting for the provider"),
    (aiohttp.ClientConnectorError, httpx.ConnectError, "could not connect"),
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol, "the provider URL is not usable"),
    (aiohttp.NonHttpUrlClientError, httpx.UnsupportedProtocol, "not an HTTP URL"),
    (aiohttp.ClientResponseError, MalformedResponseError, "the answer is not HTTP"),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError, "closed unanswered"),
)


def _httpx_error(exc: BaseException, *, reading: bool) -> httpx.TransportError:
    if reading:
        if isinstance(exc, TimeoutError):
            return httpx.ReadTimeout("timed out reading the provider's body")
        return httpx.ReadError("the provider's body ended early")
    for aiohttp_kind, httpx_kind, text in _AIOHTTP_ERRORS:
        if isinstance(exc, aiohttp_kind):
            return httpx_kind(text)
    return httpx.ReadError("the connection to the provider failed")
