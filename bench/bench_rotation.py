"""Proof of issue 4: two key rotations under load, nobody notices.

A load of Kanyashree exchanges runs at about half a node's capacity (measured
first with a short saturating run) through real servers, with one node and then
with two nodes that share one keyring and one Redis. A third and two thirds into
each run the keyring rotates (``lead_s`` of publication, the notice sent on
Redis). Afterwards:

- the load generator saw no failed or refused exchange;
- every logged exchange's ``response_signature_kid`` and
  ``request_signature_kid`` are the key that the keyring schedule makes active at
  the record's time (or, for an exchange that straddles a switch, at its end);
- the first key is revoked, and the time until every node stops publishing it
  (so that a signature made with it is refused) is measured against the
  propagation bound (the Redis notice; ``reload_interval_s`` without it);
- ``mediator log verify`` runs on every node's log.

Run: ``python -m bench.bench_rotation [--exchanges 20000] [--work DIR]``.
Prints a table and one ``BENCH_JSON`` line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.fixture import World, build, free_port, mediator_target, write_assertions
from bench.load import ensure_wrk, finish, start
from bench.procs import Server, spawn, stop, wait_ready
from bench.topology import REDIS_URL, redis_available, start_registry
from gateway.directory import parse_jwks
from gateway.keyring import Keyring, Signer, verify_raw
from gateway.keywatch import announce
from gateway.msglog.sqlite import SqliteLogStore

CHANNEL = "mediator:keyring"
LEAD_S = 4
CONNECTIONS = 16


def _start_node(world: World, name: str, keyring_of: Path | None) -> Server:
    port = free_port()
    state = world.state_copy(name)
    if keyring_of is not None:  # share the first node's keyring directory
        shutil.rmtree(state / "keyring")
        (state / "keyring").symlink_to(keyring_of / "keyring")
    env = world.node_environ(state, port, REDIS_URL)
    argv = [sys.executable, "-m", "bench.serve_node", "--port", str(port)]
    logs = world.root / "logs"
    logs.mkdir(exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    return spawn(name, argv, env, logs / f"{name}.log", url)


def _state(world: World, name: str) -> Path:
    return world.root / f"state-{name}"


def _load(
    world: World, nodes: list[Server], seconds: float, delay_ms: int, count: int
) -> list[subprocess.Popen[str]]:
    wrk = ensure_wrk()
    per_node = count // len(nodes) + 500
    tag = "-".join(server.name for server in nodes)
    started = []
    for server in nodes:
        tokens = write_assertions(
            world, world.root / f"tokens-{tag}-{server.name}", per_node
        )
        target = mediator_target(world, server.url, tokens)
        started.append(
            start(
                wrk,
                target,
                world.root,
                connections=CONNECTIONS,
                seconds=seconds,
                mean_delay_ms=delay_ms,
            )
        )
    return started


def calibrate(world: World) -> float:
    """Requests per second of one node, saturated for 6 seconds."""
    registry = start_registry(world)
    node = _start_node(world, "calibrate", None)
    try:
        wait_ready(node, "/admin/health")
        (process,) = _load(world, [node], 6, 0, 15_000)
        result = finish(process)
    finally:
        stop(node)
        stop(registry)
    return result.rps


def _rotate(keyring_dir: Path, passphrase: Any) -> str:
    keyring = Keyring.load(keyring_dir, passphrase)
    entry = keyring.rotate(activate_in_s=LEAD_S, actor="bench:rotation")
    announce(REDIS_URL, CHANNEL, keyring)
    return entry.kid


def _revoke_and_time(
    keyring_dir: Path, passphrase: Any, first: Signer, nodes: list[Server]
) -> dict[str, Any]:
    """Revoke the first key; time until no node publishes it any more."""
    data = b"made with the first key after its revocation"
    keyring = Keyring.load(keyring_dir, passphrase)
    keyring.revoke(first.kid, actor="bench:rotation")
    announce(REDIS_URL, CHANNEL, keyring)
    began = time.monotonic()
    signature = first.sign(data)
    refused_ms: dict[str, float] = {}
    while len(refused_ms) < len(nodes) and time.monotonic() - began < 30:
        for server in nodes:
            if server.name in refused_ms:
                continue
            keys = parse_jwks(
                httpx.get(server.url + "/.well-known/jwks.json").json(), ""
            )
            key = keys.get(first.kid)
            if key is None or not verify_raw(first.algorithm, key.key, data, signature):
                refused_ms[server.name] = round((time.monotonic() - began) * 1000, 1)
        time.sleep(0.02)
    return {"revoked": first.kid, "refused_after_ms": refused_ms}


async def _records(path: Path) -> list[dict[str, Any]]:
    store = SqliteLogStore(path)
    await store.open()
    try:
        found = [r async for chunk in store.iter_records() for r in chunk]
    finally:
        await store.close()
    return [orjson.loads(r.canonical) for r in found]


def _check_kids(keyring: Keyring, records: list[dict[str, Any]]) -> dict[str, int]:
    exchanges = [r for r in records if r.get("direction") == "exchange"]
    wrong = failed = 0
    used: dict[str, int] = {}
    for record in exchanges:
        failed += record["decision"] != "forwarded"
        ts = float(record["ts"])
        end = ts + sum(record.get("duration_ms", {}).values()) / 1000 + 1
        allowed = {_active_at(keyring, ts), _active_at(keyring, end)}
        kid = record.get("response_signature_kid")
        used[str(kid)] = used.get(str(kid), 0) + 1
        if kid not in allowed or record.get("request_signature_kid") not in allowed:
            wrong += 1
    return {"exchanges": len(exchanges), "not_forwarded": failed, "kid_wrong": wrong}


def _active_at(keyring: Keyring, at: float) -> str:
    """The key that signed at ``at``: activated by then and not yet retired."""
    for kid, entry in keyring.public_keys().items():
        began = entry.activate_at if entry.activate_at is not None else 0
        if began <= at and (entry.retired_at is None or at < entry.retired_at):
            return kid
    return ""


def _log_verify(world: World, name: str) -> int:
    env = {**os.environ, **world.demo.environ()}
    argv = [
        str(Path(sys.executable).parent / "mediator"),
        "--config",
        str(world.demo.config_dir),
        "--state-dir",
        str(_state(world, name)),
        "log",
        "verify",
    ]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    (world.root / f"log-verify-{name}.txt").write_text(done.stdout + done.stderr)
    return done.returncode


def run(world: World, names: list[str], exchanges: int, rate: float) -> dict[str, Any]:
    """One load run with two rotations; the checks afterwards."""
    seconds = exchanges / rate * 1.2  # the closed loop runs below the target rate
    per_connection_s = CONNECTIONS * len(names) / rate
    delay_ms = max(1, int(per_connection_s * 1000) - 5)
    registry = start_registry(world)
    nodes = [_start_node(world, names[0], None)]
    keyring_dir = _state(world, names[0]) / "keyring"
    nodes += [_start_node(world, n, _state(world, names[0])) for n in names[1:]]
    passphrase = world.demo.passphrase
    try:
        for server in nodes:
            wait_ready(server, "/admin/health")
        first = Keyring.load(keyring_dir, passphrase).active()
        loads = _load(world, nodes, seconds, delay_ms, int(exchanges * 1.5))
        began = time.monotonic()
        rotated = []
        for fraction in (1 / 3, 2 / 3):
            time.sleep(max(0.0, began + seconds * fraction - time.monotonic()))
            rotated.append(_rotate(keyring_dir, passphrase))
        results = [finish(p) for p in loads]
        revocation = _revoke_and_time(keyring_dir, passphrase, first, nodes)
    finally:
        for server in nodes:
            stop(server)
        stop(registry)
    keyring = Keyring.load(keyring_dir, passphrase)
    checks = {
        server.name: _check_kids(
            keyring,
            asyncio.run(_records(_state(world, server.name) / "messagelog.db")),
        )
        for server in nodes
    }
    return {
        "nodes": len(nodes),
        "requests": sum(r.requests for r in results),
        "errors": sum(r.errors for r in results),
        "exhausted": any(r.exhausted for r in results),
        "rps": round(sum(r.rps for r in results), 1),
        "p99_ms": max(r.p99_ms for r in results),
        "rotated_to": rotated,
        "log": checks,
        "revocation": revocation,
        "log_verify_rc": {s.name: _log_verify(world, s.name) for s in nodes},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--exchanges", type=int, default=20_000)
    parser.add_argument("--work", type=Path, default=Path("var/bench-rotation"))
    args = parser.parse_args()
    if not redis_available():
        raise SystemExit("bench_rotation needs Redis on 127.0.0.1:6379")
    if args.work.exists():
        shutil.rmtree(args.work)
    world = build(args.work)
    capacity = calibrate(world)
    rate = capacity / 2
    figures = {
        "capacity_rps": round(capacity, 1),
        "target_rps": round(rate, 1),
        "one_node": run(world, ["node-a"], args.exchanges, rate),
        "two_nodes": run(world, ["node-b", "node-c"], args.exchanges, rate),
    }
    print(json.dumps(figures, indent=2))
    print("BENCH_JSON " + json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
