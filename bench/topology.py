"""The servers a benchmark runs: the registry, the bare proxy and mediator nodes.

Every server listens on 127.0.0.1 on a free port and logs to ``<work>/logs``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.fixture import World, free_port
from bench.procs import BenchError, Server, spawn, stop, wait_ready

#: Redis database number of the benchmarks (the tests use 15).
REDIS_URL = "redis://127.0.0.1:6379/13"


@dataclass
class Topology:
    registry: Server
    bare: Server | None = None
    nodes: dict[str, Server] = field(default_factory=dict)


def redis_available() -> bool:
    """Whether Redis answers on 127.0.0.1:6379; its bench database is emptied."""
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            pass
    except OSError:
        return False
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.flushdb()
    except redis.RedisError:
        return False
    finally:
        client.close()
    return True


def _logs(world: World) -> Path:
    logs = world.root / "logs"
    logs.mkdir(exist_ok=True)
    return logs


def start_registry(world: World) -> Server:
    """Spawn the registry (signing its responses); wait for it with wait_ready."""
    demo = world.demo
    env = {**os.environ, **demo.environ()}
    argv = [
        str(Path(sys.executable).parent / "registry-stub"),
        "serve",
        "--db",
        str(demo.registry_db),
        "--port",
        str(demo.registry_port),
        "--signing-key",
        str(demo.registry_key_file),
    ]
    server = spawn(
        "registry", argv, env, _logs(world) / "registry.log", demo.registry_url
    )
    wait_ready(server, "/api/openapi.json")
    return server


def start_bare(world: World) -> Server:
    """Spawn the bare proxy in front of the registry."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "bench.bare_proxy",
        "--port",
        str(port),
        "--upstream",
        world.demo.registry_url,
    ]
    url = f"http://127.0.0.1:{port}"
    return spawn("bare-proxy", argv, dict(os.environ), _logs(world) / "bare.log", url)


def start_node(
    world: World,
    name: str,
    *,
    redis_url: str | None,
    workers: int = 1,
    config: Path | None = None,
    off: Sequence[str] = (),
) -> Server:
    """Spawn a node with its own state directory (keyring, consents, log), and
    its own configuration directory when ``config`` is given; ``off`` names the
    steps it runs switched off (bench.stepoff)."""
    port = free_port()
    state = world.state_copy(name)
    env = world.node_environ(state, port, redis_url)
    if config is not None:
        env["MEDIATOR_CONFIG"] = str(config)
    argv = [
        sys.executable,
        "-m",
        "bench.serve_node",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    if off:
        argv += ["--off", ",".join(off)]
    url = f"http://127.0.0.1:{port}"
    return spawn(name, argv, env, _logs(world) / f"{name}.log", url)


def postgres_available(dsn: str) -> bool:
    """Whether PostgreSQL answers at ``dsn`` (a loopback address)."""
    import asyncio

    import asyncpg

    async def probe() -> None:
        connection = await asyncpg.connect(dsn, timeout=2)
        await connection.close()

    try:
        asyncio.run(probe())
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    return True


def fresh_database(admin_dsn: str, name: str) -> str:
    """Drop and create database ``name``; return its DSN on the same server."""
    import asyncio

    import asyncpg

    async def recreate() -> None:
        connection = await asyncpg.connect(admin_dsn)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()

    asyncio.run(recreate())
    return admin_dsn.rsplit("/", 1)[0] + "/" + name


def postgres_config(world: World, name: str, dsn: str) -> Path:
    """A copy of the deployment's configuration whose log is PostgreSQL at ``dsn``."""
    target = world.root / f"config-{name}"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(world.demo.config_dir, target)
    node = target / "node.yaml"
    text = node.read_text()
    # Only the log's store: the consent store further down stays as it is.
    text = re.sub(
        r"(?m)^(log:\n(?:  .*\n)*?)  store: sqlite$", r"\1  store: postgres", text
    )
    text = re.sub(
        r"(?m)^  sqlite_path: .*$", f"  postgres_dsn: {json.dumps(dsn)}", text
    )
    if f"postgres_dsn: {json.dumps(dsn)}" not in text:
        raise BenchError("node.yaml has no log.sqlite_path line to replace")
    node.write_text(text)
    return target


@dataclass(frozen=True)
class NodeSpec:
    """A node that logs to PostgreSQL at ``dsn``, with ``workers`` processes."""

    redis_url: str | None
    dsn: str
    workers: int = 1


@contextmanager
def running(
    world: World,
    *,
    bare: bool,
    nodes: dict[str, str | None],
    postgres: dict[str, NodeSpec] | None = None,
    off: Mapping[str, Sequence[str]] | None = None,
) -> Iterator[Topology]:
    """The registry, the bare proxy if asked, nodes by name -> Redis URL, and
    PostgreSQL-logging nodes by name -> :class:`NodeSpec`; ``off`` gives some of
    the ``nodes`` steps to switch off (bench.stepoff).

    All start at once and are then waited for; each stops on the way out.
    """
    topology = Topology(start_registry(world))
    try:
        if bare:
            topology.bare = start_bare(world)
        for name, redis_url in nodes.items():
            steps = (off or {}).get(name, ())
            topology.nodes[name] = start_node(
                world, name, redis_url=redis_url, off=steps
            )
        for name, spec in (postgres or {}).items():
            topology.nodes[name] = start_node(
                world,
                name,
                redis_url=spec.redis_url,
                workers=spec.workers,
                config=postgres_config(world, name, spec.dsn),
            )
        wait_ready(topology.registry, "/api/openapi.json")
        if topology.bare is not None:
            # The bare proxy forwards the readiness probe to the registry.
            wait_ready(topology.bare, "/api/openapi.json")
        for server in topology.nodes.values():
            wait_ready(server, "/admin/health")
        yield topology
    finally:
        for server in topology.nodes.values():
            stop(server)
        if topology.bare is not None:
            stop(topology.bare)
        stop(topology.registry)
