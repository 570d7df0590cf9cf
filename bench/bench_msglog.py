"""Message log throughput: group commit on SQLite, and whole-log verification time.

Run: ``.venv/bin/python bench/bench_msglog.py [--records 20000]
[--verify 100000] [--windows 0,2]
[--postgres postgresql://postgres@127.0.0.1:5432/postgres]``.
Each group commit window in ``--windows`` (ms) is run in turn, side by side.
Writes into a temporary directory (and a PostgreSQL schema) that are removed
afterwards. The verify run also times inclusion proofs at the full size (from the
stored interior nodes, and streamed from every leaf) and reports peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.msglog import KeySigner, LogStore, MessageLog, SqliteLogStore, public_jwk
from gateway.msglog.checkpoint import load_jwks
from gateway.msglog.evidence import inclusion_paths, streamed_inclusion_paths
from gateway.msglog.postgres import PostgresLogStore
from gateway.msglog.verify import verify_log


def record(i: int) -> dict[str, Any]:
    return {
        "ts": time.time(),
        "message_id": f"msg-{i}",
        "request_id": f"req-{i}",
        "node_id": "bench",
        "client_id": "WB/GOV/SED/ifms",
        "service_id": "WB/GOV/SED/banglarshiksha/students",
        "method": "GET",
        "path": f"/students/{i}",
        "decision": "forwarded",
        "status": 200,
        "reason": None,
        "step": None,
        "upstream_called": True,
        "request_body_sha256": "",
        "response_body_sha256": "ab" * 32,
    }


async def appenders(
    store: LogStore,
    label: str,
    total: int,
    concurrency: int,
    signer: KeySigner,
    *,
    window_ms: float,
) -> None:
    log = MessageLog(
        store, signer=signer, checkpoint_interval_s=1.0, group_commit_ms=window_ms
    )
    await log.start()
    latencies: list[float] = []
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            started = time.perf_counter()
            await log.append(record(i))
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    await log.close()

    p99 = statistics.quantiles(latencies, n=100)[98] * 1000
    print(
        f"append ({label}, window {window_ms:g} ms): {total} records, "
        f"{concurrency} appenders: "
        f"{total / elapsed:,.0f}/s, "
        f"p50 {statistics.median(latencies) * 1000:.2f} ms, p99 {p99:.2f} ms, "
        f"{store.transactions} transactions ({total / store.transactions:.0f}/tx)"
    )


async def verify(db: Path, total: int, signer: KeySigner, jwks: dict[str, Any]) -> None:
    log = MessageLog(SqliteLogStore(db), signer=signer, group_commit_max=1000)
    await log.start()
    for start in range(0, total, 1000):
        await asyncio.gather(
            *(log.append(record(i)) for i in range(start, start + 1000))
        )
        if start % 10000 == 0:
            await log.checkpoint()
    await log.close()

    store = SqliteLogStore(db)
    await store.open()
    started = time.perf_counter()
    report = await verify_log(store, load_jwks(jwks))
    elapsed = time.perf_counter() - started
    await store.close()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"verify: {report.records} records, {report.checkpoints} checkpoints in "
        f"{elapsed:.2f} s ({report.records / elapsed:,.0f} records/s), ok={report.ok}, "
        f"peak RSS {rss_mb:.0f} MB"
    )
    await store.open()
    try:
        await proof_times(store, total)
    finally:
        await store.close()


async def proof_times(store: LogStore, total: int) -> None:
    """Time inclusion proofs at the full size: from stored nodes, and streamed."""
    checkpoint = await store.latest_checkpoint()
    if checkpoint is None:
        return
    size = checkpoint.tree_size
    timings: list[float] = []
    for seq in random.Random(7).sample(range(size), min(200, size)):
        rows = await store.get_range(seq, seq + 1)
        started = time.perf_counter()
        await inclusion_paths(store, rows, checkpoint)
        timings.append((time.perf_counter() - started) * 1000)
    started = time.perf_counter()
    await streamed_inclusion_paths(store, [size // 2], size)
    streamed_ms = (time.perf_counter() - started) * 1000
    print(
        f"inclusion proof at {size} records (stored nodes, {len(timings)} proofs): "
        f"p50 {statistics.median(timings):.2f} ms, max {max(timings):.2f} ms; "
        f"streamed from every leaf: {streamed_ms:.0f} ms"
    )


async def postgres_appenders(
    dsn: str, total: int, concurrency: int, signer: KeySigner, window_ms: float
) -> None:
    schema = "msglog_bench"
    try:
        await appenders(
            PostgresLogStore(dsn, schema=schema),
            "postgres",
            total,
            concurrency,
            signer,
            window_ms=window_ms,
        )
    finally:
        conn = await asyncpg.connect(dsn)
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--verify", type=int, default=100000)
    parser.add_argument("--postgres", help="DSN of a loopback PostgreSQL to bench")
    parser.add_argument(
        "--windows", default="0,2", help="group commit windows to compare, in ms"
    )
    args = parser.parse_args()
    windows = [float(value) for value in args.windows.split(",")]

    key = Ed25519PrivateKey.generate()
    signer = KeySigner("bench", key)
    jwks = {"keys": [public_jwk("bench", key.public_key())]}
    with tempfile.TemporaryDirectory() as tmp:
        for window in windows:
            asyncio.run(
                appenders(
                    SqliteLogStore(Path(tmp) / f"a-{window:g}.db"),
                    "sqlite",
                    args.records,
                    args.concurrency,
                    signer,
                    window_ms=window,
                )
            )
            if args.postgres:
                asyncio.run(
                    postgres_appenders(
                        args.postgres, args.records, args.concurrency, signer, window
                    )
                )
        asyncio.run(verify(Path(tmp) / "v.db", args.verify, signer, jwks))


if __name__ == "__main__":
    main()
