"""A Python load generator, for machines without wrk: aiohttp, closed loop.

Run by :mod:`bench.load` in its own process with one JSON argument; prints the
same ``BENCH_JSON`` line as the wrk script. Its CPU is reported beside the
servers' so that a saturated generator is visible.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp


async def _run(spec: dict[str, Any], tokens: list[str] | None) -> dict[str, Any]:
    bodies = [b.encode() for b in spec["bodies"]]
    url = spec["url"] + spec["path"]
    latencies: list[float] = []
    errors = exhausted = 0
    counter = iter(range(10**9))
    deadline = time.monotonic() + spec["seconds"]
    mean_delay = spec["mean_delay_ms"] / 1000

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors, exhausted
        while time.monotonic() < deadline:
            index = next(counter)
            headers = dict(spec["headers"])
            if tokens is not None:
                if index >= len(tokens):
                    exhausted = 1
                    return
                headers["Authorization"] = f"Bearer {tokens[index]}"
            started = time.perf_counter()
            body = bodies[index % len(bodies)]
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status >= 400:
                    errors += 1
            latencies.append(time.perf_counter() - started)
            if mean_delay:
                await asyncio.sleep(random.uniform(0, 2 * mean_delay))

    connector = aiohttp.TCPConnector(limit=spec["connections"])
    began = time.monotonic()
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(spec["connections"])))
    elapsed = time.monotonic() - began
    latencies.sort()

    def pct(p: float) -> int:
        if not latencies:
            return 0
        return int(latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1e6)

    return {
        "requests": len(latencies),
        "duration_us": int(elapsed * 1e6),
        "p50_us": pct(0.5),
        "p99_us": pct(0.99),
        "p999_us": pct(0.999),
        "errors_status": errors,
        "errors_socket": 0,
        "exhausted": exhausted,
    }


def main() -> None:
    spec = json.loads(sys.argv[1])
    tokens = Path(spec["tokens"]).read_text().split() if spec["tokens"] else None
    figures = asyncio.run(_run(spec, tokens))
    print("BENCH_JSON " + json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
