"""Client CPU per provider call: httpx's default transport against the aiohttp ones.

Starts a small aiohttp provider on 127.0.0.1 in a child process, then sends
6000 GETs with 32 in flight through each client and prints the client process's
CPU time per request. Run: ``.venv/bin/python bench/bench_upstream.py``.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import httpx
import httpx_aiohttp

from gateway.settings import UpstreamSettings
from gateway.transport import ProviderTransport
from gateway.upstream import Upstream, make_client

REQUESTS = 6000
CONCURRENCY = 32
BODY = b'{"student_id":"WB201900001235","class":"V","udise_code":"19110900503"}' * 4

PROVIDER = f"""
import sys
from aiohttp import web

async def answer(request):
    return web.Response(body={BODY!r}, content_type="application/json")

async def ready(app):
    for site in runner.sites:
        print(site._server.sockets[0].getsockname()[1], flush=True)

app = web.Application()
app.router.add_get("/api/students/{{tail:.*}}", answer)
runner = web.AppRunner(app, access_log=None)

async def main():
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    await ready(app)
    await __import__("asyncio").Event().wait()

__import__("asyncio").run(main())
"""


async def run(label: str, call: Callable[[int], Awaitable[None]]) -> None:
    for i in range(200):
        await call(i)

    queue = iter(range(REQUESTS))

    async def worker() -> None:
        for i in queue:
            await call(i)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(
        f"{label:34} {cpu / REQUESTS * 1e6:7.0f} us CPU/request "
        f"{REQUESTS / wall:7.0f} requests/s"
    )


async def main(port: int) -> None:
    base = f"http://127.0.0.1:{port}/api/students/by-udise/"
    settings = UpstreamSettings(pool_size=CONCURRENCY)
    limits = httpx.Limits(max_connections=CONCURRENCY)

    async def client_get(client: httpx.AsyncClient) -> Callable[[int], Awaitable[None]]:
        async def call(i: int) -> None:
            response = await client.get(base + str(i))
            response.raise_for_status()

        return call

    default = httpx.AsyncClient(limits=limits, trust_env=False)
    await run("httpx default transport", await client_get(default))
    await default.aclose()

    library = httpx.AsyncClient(
        transport=httpx_aiohttp.AiohttpTransport(limits=limits), trust_env=False
    )
    await run("httpx_aiohttp.AiohttpTransport", await client_get(library))
    await library.aclose()

    own = make_client(settings)
    await run("ProviderTransport (make_client)", await client_get(own))
    await own.aclose()

    # The generic path: httpx's client machinery over the same transport (what
    # Upstream.send did for every call before it took the lean path).
    generic = httpx.AsyncClient(transport=ProviderTransport(settings), trust_env=False)
    for label, client in (
        ("Upstream.send, httpx client path", generic),
        ("Upstream.send, lean path", make_client(settings)),
    ):
        upstream = Upstream(client, settings)

        async def send(i: int, upstream: Upstream = upstream) -> None:
            await upstream.send("GET", base + str(i), {}, b"", max_body_bytes=1 << 20)

        await run(label, send)
        await upstream.aclose()


if __name__ == "__main__":
    provider = subprocess.Popen(
        [sys.executable, "-c", PROVIDER], stdout=subprocess.PIPE, text=True
    )
    try:
        assert provider.stdout is not None
        asyncio.run(main(int(provider.stdout.readline())))
    finally:
        provider.terminate()
        provider.wait()
