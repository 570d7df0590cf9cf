"""Step 8, forward: the provider client (transport only; signing is elsewhere).

The node calls providers through one pooled :class:`httpx.AsyncClient`, built by
:func:`make_client` and injected into :class:`Upstream`, so tests hand in a mock
transport. The client's transport is :class:`gateway.transport.ProviderTransport`,
a small httpx transport over aiohttp (its module says why it is the node's own).

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
import zlib
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, replace
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any, Final, Protocol

import aiohttp
import httpx

from gateway.errors import Reason, UpstreamError
from gateway.settings import UpstreamSettings
from gateway.transport import (
    BODYLESS_STATUS,
    FRESH_CONNECTION,
    STRAY_BYTES,
    MalformedResponseError,
    ProviderTransport,
)
from gateway.wire import HOP_BY_HOP

USER_AGENT: Final = "shiksha-mediator"

_RETRIED_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})


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


class ProviderClient(httpx.AsyncClient):
    """The client :func:`make_client` builds: an httpx client over a
    :class:`ProviderTransport` that :class:`Upstream` may call directly.

    httpx's client machinery (request building, URL parsing, cookie extraction,
    auth and redirect flows) cost about a fifth of a node's CPU per exchange and
    does nothing the node needs, so :class:`Upstream` skips it for this client;
    any other client (a mock transport in tests, an ASGI transport) goes through
    httpx as usual.
    """

    def __init__(self, transport: ProviderTransport, **kwargs: Any) -> None:
        super().__init__(transport=transport, **kwargs)
        self.provider = transport


def make_client(settings: UpstreamSettings) -> httpx.AsyncClient:
    """The node's one pooled provider client.

    No redirects are followed, no proxy or certificate settings are read from the
    environment, and no cookie is kept: a cookie one provider answer sets must
    never travel with another client's request. Raises nothing.
    """
    return ProviderClient(
        ProviderTransport(settings),
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


class _Answer(Protocol):
    """A provider's answer with its body unread, whichever client fetched it."""

    status: int
    #: True when bytes after a bodyless answer were dropped by the transport.
    stray: bool

    def headers(self) -> list[tuple[str, str]]: ...

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


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
        call = _Call(
            method.upper(),
            url,
            _request_headers(headers),
            body,
            timeout_s or self._settings.read_timeout_s,
            max_body_bytes,
        )
        attempts = 1
        while True:
            try:
                status, raw_headers, content, notes = await self._attempt(
                    call, fresh=attempts > 1
                )
            except UpstreamError as error:
                if not _retry(error, call.method, attempts):
                    error.attempts = attempts
                    raise
                attempts += 1
                continue
            return UpstreamResponse(
                status, _end_to_end(raw_headers), content, attempts, notes
            )

    async def aclose(self) -> None:
        """Close the pooled connections. Raises nothing."""
        await self._client.aclose()

    async def _attempt(
        self, call: _Call, *, fresh: bool
    ) -> tuple[int, list[tuple[str, str]], bytes, tuple[str, ...]]:
        deadline = self._settings.connect_timeout_s + call.wait_s
        try:
            async with asyncio.timeout(deadline):
                answer = await self._open(call, fresh=fresh)
                try:
                    return await _read_answer(answer, call)
                finally:
                    await answer.aclose()
        except TimeoutError as exc:
            raise UpstreamError(
                Reason.UPSTREAM_TIMEOUT, log_reason="upstream_deadline"
            ) from exc

    async def _open(self, call: _Call, *, fresh: bool) -> _Answer:
        connect = self._settings.connect_timeout_s
        client = self._client
        try:
            if isinstance(client, ProviderClient):
                return await client.provider.open(
                    call.method,
                    call.url,
                    _with_defaults(client.headers, call.headers),
                    call.body,
                    timeouts=aiohttp.ClientTimeout(
                        connect=connect, sock_connect=connect, sock_read=call.wait_s
                    ),
                    fresh=fresh,
                )
            request = client.build_request(
                call.method,
                call.url,
                headers=call.headers,
                content=call.body,
                timeout=httpx.Timeout(call.wait_s, connect=connect, pool=connect),
                extensions={FRESH_CONNECTION: True} if fresh else None,
            )
            response = await client.send(request, stream=True)
        except httpx.TransportError as exc:
            raise _before_answer(exc) from exc
        return _HttpxAnswer(response)


@dataclass(frozen=True, slots=True)
class _Call:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    #: The wait for each piece of the answer.
    wait_s: float
    max_body_bytes: int


class _HttpxAnswer:
    """An httpx response as an :class:`_Answer`."""

    __slots__ = ("_response", "status", "stray")

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status = response.status_code
        self.stray = bool(response.extensions.get(STRAY_BYTES))

    def headers(self) -> list[tuple[str, str]]:
        return self._response.headers.multi_items()

    async def chunks(self) -> AsyncIterator[bytes]:
        if self._response.is_stream_consumed:
            # A response built in memory (a mock transport) is read already.
            yield self._response.content
            return
        async for chunk in self._response.aiter_raw():
            yield chunk

    async def aclose(self) -> None:
        await self._response.aclose()


async def _read_answer(
    answer: _Answer, call: _Call
) -> tuple[int, list[tuple[str, str]], bytes, tuple[str, ...]]:
    headers = answer.headers()
    if call.method == "HEAD" or answer.status in BODYLESS_STATUS:
        stray = await _read_body(answer, call.max_body_bytes, bounded=False)
        notes = ("upstream_body_on_bodyless_response",) if stray or answer.stray else ()
        return answer.status, headers, b"", notes

    declared = _declared_length(headers)
    if declared is not None and declared > call.max_body_bytes:
        raise _too_large()
    content = await _read_body(answer, call.max_body_bytes, bounded=True)
    _check_length(declared, len(content))
    return answer.status, headers, content, ()


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


async def _read_body(answer: _Answer, max_body_bytes: int, *, bounded: bool) -> bytes:
    """Read the raw body; past ``max_body_bytes`` fail if ``bounded``, else stop."""
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in answer.chunks():
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


def _with_defaults(
    defaults: httpx.Headers, headers: dict[str, str]
) -> list[tuple[str, str]]:
    """The client's default headers under the request's, as httpx merges them."""
    merged = {
        name: value
        for name, value in defaults.multi_items()
        if name not in HOP_BY_HOP and name not in headers
    }
    merged.update(headers)
    return list(merged.items())


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


__all__ = [
    "MalformedResponseError",
    "ProviderClient",
    "Upstream",
    "UpstreamResponse",
    "identity_body",
    "make_client",
]
