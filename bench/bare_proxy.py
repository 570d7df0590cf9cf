"""The baseline: a bare reverse proxy, uvicorn in front and an aiohttp client behind.

No authentication, signing, policy or log: it copies the method, path, query,
body and end-to-end headers to the upstream and the answer back. It runs on the
same server stack as the node (uvicorn, uvloop, httptools), so that the difference
between the two is the mediator's own work.

Run: ``python -m bench.bare_proxy --port 8711 --upstream http://127.0.0.1:8701``.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp
import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"upgrade",
        b"te",
        b"trailer",
        b"host",
        b"content-length",
    }
)


class BareProxy:
    """An ASGI app that forwards every HTTP request to one upstream origin."""

    def __init__(self, upstream: str, connections: int = 64) -> None:
        self._upstream = upstream.rstrip("/")
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._forward(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                connector = aiohttp.TCPConnector(limit=self._connections)
                self._session = aiohttp.ClientSession(connector=connector)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._session is not None:
                    await self._session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name not in _HOP_BY_HOP
        }
        url = self._upstream + scope["raw_path"].decode("latin-1")
        if scope["query_string"]:
            url += "?" + scope["query_string"].decode("latin-1")
        if self._session is None:
            await _answer(send, 503, [], b"")
            return
        async with self._session.request(
            scope["method"], url, headers=headers, data=body
        ) as response:
            payload = await response.read()
            answer = [
                (name.lower(), value)
                for name, value in response.raw_headers
                if name.lower() not in _HOP_BY_HOP
            ]
        await _answer(send, response.status, answer, payload)


async def _answer(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    uvicorn.run(
        BareProxy(args.upstream),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        server_header=False,
    )


if __name__ == "__main__":
    main()
