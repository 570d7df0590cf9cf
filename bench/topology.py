"""The servers a benchmark runs: the registry, the bare proxy and mediator nodes.

Every server listens on 127.0.0.1 on a free port and logs to ``<work>/logs``.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.fixture import World, free_port
from bench.procs import Server, spawn, stop, wait_ready

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
    world: World, name: str, *, redis_url: str | None, workers: int = 1
) -> Server:
    """Spawn a node with its own state directory (keyring, consents, log)."""
    port = free_port()
    state = world.state_copy(name)
    env = world.node_environ(state, port, redis_url)
    argv = [
        sys.executable,
        "-m",
        "bench.serve_node",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    url = f"http://127.0.0.1:{port}"
    return spawn(name, argv, env, _logs(world) / f"{name}.log", url)


@contextmanager
def running(
    world: World, *, bare: bool, nodes: dict[str, str | None]
) -> Iterator[Topology]:
    """The registry, the bare proxy if asked, and nodes by name -> Redis URL.

    All start at once and are then waited for; each stops on the way out.
    """
    topology = Topology(start_registry(world))
    try:
        if bare:
            topology.bare = start_bare(world)
        for name, redis_url in nodes.items():
            topology.nodes[name] = start_node(world, name, redis_url=redis_url)
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
