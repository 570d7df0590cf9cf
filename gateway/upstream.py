"""Step 8, forward: the provider client (transport only; signing is elsewhere).

The node calls providers through one pooled :class:`httpx.AsyncClient`, built by
:func:`make_client` and injected into :class:`Upstream`, so tests hand in a mock
transport. The client's transport is :class:`ProviderTransport`, a small httpx
transport over aiohttp: httpx's default transport cost 1.5-2.4 ms of CPU per
proxied request. It is the node's own rather than ``httpx_aiohttp``'s because a
provider call needs three things that one does not give:

- a connection that carried a HEAD, 204 or 304 response is closed, never pooled:
  a provider that writes a body after such a response would otherwise have its
  stray bytes read as the answer to the next exchange on that connection, which
  may belong to another client (response desync);
- failures are told apart by phase (no answer yet, or a body cut short), and no
  library text, address or body byte reaches an error;
- a retry can ask for a fresh connection instead of another pooled one.

:meth:`Upstream.send` reads the whole answer within ``max_body_bytes`` and maps
every failure to an :class:`UpstreamError` with a fixed ``log_reason``:

- cannot connect: ``UPSTREAM_UNAVAILABLE``; no answer in time: ``UPSTREAM_TIMEOUT``;
- the connection closed or reset before any answer: ``UPSTREAM_CONNECTION_RESET``,
  after exactly one retry on a fresh connection for GET, HEAD and OPTIONS
  (RFC 9110 section 9.2.2); never retried for other methods, since the provider
  may already have acted on the request;
- a body shorter than its Content-Length, or cut by a reset: ``UPSTREAM_TRUNCATED``;
- an answer that is not HTTP: ``UPSTREAM_PROTOCOL_VIOLATION``;
- a body over the limit: ``UPSTREAM_RESPONSE_INVALID`` (``upstream_body_too_large``).

Responses to HEAD, and 204 and 304 responses, have no body: bytes a provider sends
anyway are dropped and noted in :attr:`UpstreamResponse.notes`. Hop-by-hop headers
are removed from the response. Requests ask for ``Accept-Encoding: identity``; a
provider that compresses anyway is answered by :func:`identity_body`, which the
exchange calls after verifying the provider's signature over the bytes as received
and before it releases or maps a field, so compression never bypasses redaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Final

import aiohttp
import httpx
from aiohttp.connector import Connection

from gateway.errors import Reason, UpstreamError
from gateway.settings import UpstreamSettings
from gateway.wire import HOP_BY_HOP

USER_AGENT: Final = "shiksha-mediator"
#: Request extension that makes :class:`ProviderTransport` open a new connection.
FRESH_CONNECTION: Final = "mediator.fresh_connection"

_RETRIED_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
_BODYLESS_STATUS: Final = frozenset({204, 304})
_CHUNK: Final = 64 * 1024
_FRAMED_BY_AIOHTTP: Final = frozenset(
    {"connection", "keep-alive", "content-length", "transfer-encoding"}
)


class MalformedResponseError(httpx.RemoteProtocolError):
    """The provider's answer could not be parsed as HTTP."""


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    """A provider's whole answer, with hop-by-hop headers removed."""

    status: int
    #: Lower-case names, in the order received.
    headers: list[tuple[str, str]]
    body: bytes
    #: 1, or 2 when the first attempt met a closed connection and was retried.
    attempts: int
    #: Fixed codes for oddities that did not fail the exchange, for the log.
    notes: tuple[str, ...] = ()


def make_client(settings: UpstreamSettings) -> httpx.AsyncClient:
    """The node's one pooled provider client.

    No redirects are followed, no proxy or certificate settings are read from the
    environment, and no cookie is kept: a cookie one provider answer sets must
    never travel with another client's request. Raises nothing.
    """
    return httpx.AsyncClient(
        transport=ProviderTransport(settings),
        timeout=httpx.Timeout(
            settings.read_timeout_s,
            connect=settings.connect_timeout_s,
            pool=settings.connect_timeout_s,
        ),
        follow_redirects=False,
        trust_env=False,
        cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])),
        headers={"accept-encoding": "identity", "user-agent": USER_AGENT},
    )


class Upstream:
    """Sends one exchange to its provider and reads the whole answer."""

    def __init__(self, client: httpx.AsyncClient, settings: UpstreamSettings) -> None:
        self._client = client
        self._settings = settings

    async def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        timeout_s: float | None = None,
        max_body_bytes: int,
    ) -> UpstreamResponse:
        """Send the request and return the provider's answer.

        ``timeout_s`` (else the configured read timeout) bounds the wait for each
        piece of the answer, and with the connect timeout the whole attempt.
        Hop-by-hop and framing headers in ``headers`` are dropped: the request is
        framed from ``body``. Raises :class:`UpstreamError` as the module says.
        """
        method = method.upper()
        request_headers = _request_headers(headers)
        attempts = 1
        while True:
            try:
                request = self._request(
                    method, url, request_headers, body, timeout_s, fresh=attempts > 1
                )
                status, raw_headers, content, notes = await self._attempt(
                    request, timeout_s, max_body_bytes
                )
            except UpstreamError as error:
                if not _retry(error, method, attempts):
                    raise
                attempts += 1
                continue
            return UpstreamResponse(
                status, _end_to_end(raw_headers), content, attempts, notes
            )

    async def aclose(self) -> None:
        """Close the pooled connections. Raises nothing."""
        await self._client.aclose()

    def _request(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes,
        timeout_s: float | None,
        *,
        fresh: bool,
    ) -> httpx.Request:
        wait = timeout_s or self._settings.read_timeout_s
        connect = self._settings.connect_timeout_s
        return self._client.build_request(
            method,
            url,
            headers=headers,
            content=body,
            timeout=httpx.Timeout(wait, connect=connect, pool=connect),
            extensions={FRESH_CONNECTION: True} if fresh else None,
        )

    async def _attempt(
        self, request: httpx.Request, timeout_s: float | None, max_body_bytes: int
    ) -> tuple[int, list[tuple[str, str]], bytes, tuple[str, ...]]:
        deadline = self._settings.connect_timeout_s + (
            timeout_s or self._settings.read_timeout_s
        )
        try:
            async with asyncio.timeout(deadline):
                return await self._exchange(request, max_body_bytes)
        except TimeoutError as exc:
            raise UpstreamError(
                Reason.UPSTREAM_TIMEOUT, log_reason="upstream_deadline"
            ) from exc

    async def _exchange(
        self, request: httpx.Request, max_body_bytes: int
    ) -> tuple[int, list[tuple[str, str]], bytes, tuple[str, ...]]:
        try:
            response = await self._client.send(request, stream=True)
        except httpx.TransportError as exc:
            raise _before_answer(exc) from exc

        try:
            headers = response.headers.multi_items()
            if request.method == "HEAD" or response.status_code in _BODYLESS_STATUS:
                stray = await _read_body(response, max_body_bytes, bounded=False)
                notes = ("upstream_body_on_bodyless_response",) if stray else ()
                return response.status_code, headers, b"", notes

            declared = _declared_length(headers)
            if declared is not None and declared > max_body_bytes:
                raise _too_large()
            content = await _read_body(response, max_body_bytes, bounded=True)
            _check_length(declared, len(content))
            return response.status_code, headers, content, ()
        finally:
            await response.aclose()


def identity_body(
    response: UpstreamResponse, *, max_body_bytes: int
) -> UpstreamResponse:
    """``response`` with its content coding removed (gzip, deflate or identity).

    Raises :class:`UpstreamError`: ``UPSTREAM_PROTOCOL_VIOLATION`` for a coding
    that cannot be decoded, ``UPSTREAM_RESPONSE_INVALID`` when the decoded body
    exceeds ``max_body_bytes`` (a compression bomb stops there).
    """
    codings = [
        coding.strip().lower()
        for name, value in response.headers
        if name == "content-encoding"
        for coding in value.split(",")
        if coding.strip()
    ]
    if all(coding == "identity" for coding in codings):
        return response

    body = response.body
    for coding in reversed(codings):
        body = _decode(coding, body, max_body_bytes)
    headers = [(n, v) for n, v in response.headers if n != "content-encoding"]
    return replace(response, headers=headers, body=body)


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
        fresh = bool(request.extensions.get(FRESH_CONNECTION))
        session = self._session(fresh=fresh)
        timeout = request.extensions.get("timeout", {})
        content = await request.aread()
        headers = [
            (name, value)
            for name, value in request.headers.multi_items()
            if name not in _FRAMED_BY_AIOHTTP
        ]
        with _translated():
            response = await session.request(
                request.method,
                str(request.url),
                headers=headers,
                data=content or None,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(
                    connect=timeout.get("pool"),
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                ),
            )

        if request.method == "HEAD" or response.status in _BODYLESS_STATUS:
            response.close()
            stream: httpx.AsyncByteStream = httpx.ByteStream(b"")
        else:
            stream = _ResponseBody(response)
        return httpx.Response(
            response.status,
            headers=list(response.raw_headers),
            stream=stream,
            request=request,
        )

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


class _ProviderResponse(aiohttp.ClientResponse):
    """A response whose connection is closed, never pooled, if it has no body.

    aiohttp pools the connection as soon as a HEAD, 204 or 304 answer's head is
    read; bytes the provider writes after it would then be read as the answer to
    the next request on that connection (response desync, C06).
    """

    async def start(self, connection: Connection) -> aiohttp.ClientResponse:
        protocol = connection.protocol
        await super().start(connection)
        # No await since the connection went back to the pool: nobody took it yet.
        bodyless = self.method == "HEAD" or self.status in _BODYLESS_STATUS
        if bodyless and protocol is not None:
            protocol.close()
        return self


class _ResponseBody(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _translated(reading=True):
            async for chunk in self._response.content.iter_chunked(_CHUNK):
                yield chunk

    async def aclose(self) -> None:
        # Pools the connection only if the body was read to its end.
        self._response.release()


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

#: httpx's failures before an answer, most specific first, as the node's reasons.
_BEFORE_ANSWER: Final[
    tuple[tuple[type[httpx.TransportError], Reason, str | None], ...]
] = (
    (httpx.PoolTimeout, Reason.UPSTREAM_TIMEOUT, "upstream_pool_timeout"),
    (httpx.ConnectTimeout, Reason.UPSTREAM_TIMEOUT, "upstream_connect_timeout"),
    (httpx.TimeoutException, Reason.UPSTREAM_TIMEOUT, None),
    (MalformedResponseError, Reason.UPSTREAM_PROTOCOL_VIOLATION, None),
    (httpx.ConnectError, Reason.UPSTREAM_UNAVAILABLE, None),
    (httpx.RemoteProtocolError, Reason.UPSTREAM_CONNECTION_RESET, None),
    (httpx.NetworkError, Reason.UPSTREAM_CONNECTION_RESET, None),
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


def _before_answer(exc: httpx.TransportError) -> UpstreamError:
    """The error for a failure before the provider's status line arrived."""
    for kind, reason, log_reason in _BEFORE_ANSWER:
        if isinstance(exc, kind):
            return UpstreamError(reason, log_reason=log_reason)
    return UpstreamError(Reason.UPSTREAM_UNAVAILABLE, log_reason="upstream_transport")


def _retry(error: UpstreamError, method: str, attempts: int) -> bool:
    return (
        error.reason is Reason.UPSTREAM_CONNECTION_RESET
        and method in _RETRIED_METHODS
        and attempts == 1
    )


async def _read_body(
    response: httpx.Response, max_body_bytes: int, *, bounded: bool
) -> bytes:
    """Read the raw body; past ``max_body_bytes`` fail if ``bounded``, else stop."""
    if response.is_stream_consumed:
        # A response built in memory (a mock transport) is read already.
        if bounded and len(response.content) > max_body_bytes:
            raise _too_large()
        return response.content

    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in response.aiter_raw():
            chunks.append(chunk)
            size += len(chunk)
            if size <= max_body_bytes:
                continue
            if bounded:
                raise _too_large()
            break
    except httpx.TimeoutException as exc:
        raise UpstreamError(Reason.UPSTREAM_TIMEOUT) from exc
    except httpx.TransportError as exc:
        raise UpstreamError(Reason.UPSTREAM_TRUNCATED) from exc
    return b"".join(chunks)


def _declared_length(headers: Iterable[tuple[str, str]]) -> int | None:
    declared = {value.strip() for name, value in headers if name == "content-length"}
    if not declared:
        return None
    value = declared.pop()
    if declared or not value.isdigit():
        raise UpstreamError(
            Reason.UPSTREAM_PROTOCOL_VIOLATION, log_reason="upstream_content_length"
        )
    return int(value)


def _check_length(declared: int | None, received: int) -> None:
    if declared is None or received == declared:
        return
    if received < declared:
        raise UpstreamError(Reason.UPSTREAM_TRUNCATED)
    raise UpstreamError(
        Reason.UPSTREAM_PROTOCOL_VIOLATION, log_reason="upstream_content_length"
    )


def _request_headers(headers: Mapping[str, str]) -> dict[str, str]:
    kept = {
        name.lower(): value
        for name, value in headers.items()
        if name.lower() not in HOP_BY_HOP
    }
    kept["accept-encoding"] = "identity"
    return kept


def _end_to_end(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Drop hop-by-hop headers and those the ``Connection`` header names."""
    named = {
        token.strip().lower()
        for name, value in headers
        if name == "connection"
        for token in value.split(",")
    }
    return [(n, v) for n, v in headers if n not in HOP_BY_HOP and n not in named]


def _too_large() -> UpstreamError:
    return UpstreamError(
        Reason.UPSTREAM_RESPONSE_INVALID, log_reason="upstream_body_too_large"
    )


def _decode(coding: str, body: bytes, max_body_bytes: int) -> bytes:
    if coding == "identity":
        return body
    if coding in {"gzip", "x-gzip"}:
        return _inflate(body, 16 + zlib.MAX_WBITS, max_body_bytes)
    if coding == "deflate":
        # RFC 9110 says zlib format; some servers send raw deflate.
        try:
            return _inflate(body, zlib.MAX_WBITS, max_body_bytes)
        except UpstreamError as error:
            if error.reason is not Reason.UPSTREAM_PROTOCOL_VIOLATION:
                raise
            return _inflate(body, -zlib.MAX_WBITS, max_body_bytes)
    raise UpstreamError(
        Reason.UPSTREAM_PROTOCOL_VIOLATION, log_reason="upstream_content_encoding"
    )


def _inflate(body: bytes, wbits: int, max_body_bytes: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(body, max_body_bytes + 1)
    except zlib.error:
        raise UpstreamError(
            Reason.UPSTREAM_PROTOCOL_VIOLATION, log_reason="upstream_content_encoding"
        ) from None
    if len(out) > max_body_bytes:
        raise _too_large()
    if not inflater.eof or inflater.unused_data:
        raise UpstreamError(
            Reason.UPSTREAM_PROTOCOL_VIOLATION, log_reason="upstream_content_encoding"
        )
    return out
