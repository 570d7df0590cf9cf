"""``make soak``: up to 1,000,000 exchanges through one node, its memory sampled.

The node (SQLite log, no Redis) is driven by wrk in chunks: before each chunk a
fresh batch of assertions is made (each lives 300 s), then the node's resident
memory (``/proc/<pid>/status`` VmRSS, the node and its children) is sampled. The
run stops at ``BENCH_SOAK_EXCHANGES`` (default 1,000,000) or when
``BENCH_SOAK_SECONDS`` (default 1800) of load have been spent, whichever comes
first; the count reached is reported as it is. ``rss_growth_pct`` compares the
memory after exchange 100,000 (or after the first tenth of a shorter run) with
the memory at the end.

The assertions live 60 s (long enough for a chunk and the time to make them).
A node without Redis holds each one in its replay cache for its lifetime, so
the cache grows to (exchanges per second x lifetime) and then stays there: with
60-s assertions that plateau is reached well before exchange 100,000, and the
growth measured after it is what a leak would show.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench import fixture, load
from bench.procs import BenchError, cpu_seconds, rss_kib
from bench.topology import running

CONNECTIONS = 32
CHUNK_S = 30
WARM_EXCHANGES = 100_000
ASSERTION_LIFETIME_S = 60


def main() -> int:
    work = Path(os.environ.get("BENCH_WORK", "var/soak")).resolve()
    out = Path(os.environ.get("BENCH_JSON", "bench/out/soak.json"))
    target_count = int(os.environ.get("BENCH_SOAK_EXCHANGES") or 1_000_000)
    bound_s = float(os.environ.get("BENCH_SOAK_SECONDS") or 1800)
    wrk = load.ensure_wrk()
    world = fixture.build(work)

    with running(world, bare=False, nodes={"node-a": None}) as topology:
        node = topology.nodes["node-a"]
        samples = _soak(
            world,
            node.url,
            node.pid,
            wrk=wrk,
            work=work,
            target_count=target_count,
            bound_s=bound_s,
        )

    figures = _figures(samples, target_count, bound_s)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**figures, "samples": samples}, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    print(f"figures written to {out}")
    return 0


def _soak(
    world: fixture.World,
    url: str,
    pid: int,
    *,
    wrk: str | None,
    work: Path,
    target_count: int,
    bound_s: float,
) -> list[dict[str, Any]]:
    samples = [{"exchanges": 0, "rss_kib": rss_kib(pid), "errors": 0, "load_s": 0.0}]
    done = errors = 0
    spent = 0.0
    rate = 1500.0
    while done < target_count and spent < bound_s:
        seconds = min(CHUNK_S, bound_s - spent)
        # Never a sliver of a chunk: the load generator hands each connection a
        # share of the assertions, and 32 of them went unused, chunk after chunk.
        wanted = max(min(target_count - done, int(rate * seconds * 1.3)), 1000)
        tokens = fixture.write_assertions(
            world, work / "tokens-soak.txt", wanted, lifetime_s=ASSERTION_LIFETIME_S
        )
        target = fixture.mediator_target(world, url, tokens)
        cpu = cpu_seconds(pid)
        began = time.monotonic()
        result = load.finish(
            load.start(wrk, target, work, connections=CONNECTIONS, seconds=seconds)
        )
        spent += time.monotonic() - began
        if result.requests == 0:
            print("the last chunk made no exchanges: stopping", flush=True)
            break
        done += result.requests
        errors += result.errors
        rate = max(result.rps, 100.0)
        samples.append(
            {
                "exchanges": done,
                "rss_kib": rss_kib(pid),
                "errors": errors,
                "load_s": round(spent, 1),
                "rps": round(result.rps, 1),
                "cpu_us_per_exchange": round(
                    (cpu_seconds(pid) - cpu) / max(result.requests, 1) * 1e6, 1
                ),
            }
        )
        print(
            f"{done:>9} exchanges, RSS {samples[-1]['rss_kib'] / 1024:.1f} MiB, "
            f"{result.rps:.0f}/s, errors {errors}",
            flush=True,
        )
    return samples


def _figures(
    samples: list[dict[str, Any]], target_count: int, bound_s: float
) -> dict[str, Any]:
    done = samples[-1]["exchanges"]
    mark = WARM_EXCHANGES if done >= 2 * WARM_EXCHANGES else done // 10
    warm = next(s for s in samples if s["exchanges"] >= mark)
    growth = (samples[-1]["rss_kib"] - warm["rss_kib"]) / warm["rss_kib"] * 100
    return {
        "exchanges": done,
        "target_exchanges": target_count,
        "reached_target": done >= target_count,
        "bound_s": bound_s,
        "load_s": samples[-1]["load_s"],
        "errors": samples[-1]["errors"],
        "rss_mib_at_mark": round(warm["rss_kib"] / 1024, 1),
        "mark_exchanges": warm["exchanges"],
        "rss_mib_at_end": round(samples[-1]["rss_kib"] / 1024, 1),
        "rss_growth_pct": round(growth, 2),
    }


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"soak failed: {exc}", file=sys.stderr)
        sys.exit(1)
