"""Health for load balancers and the environment facts of the admin API.

``/admin/health`` answers 200 only when the message log can be written, a key
may sign, Redis answers (when configured), the replay store in Redis cannot evict
its keys (``replay_store``: checked again when its last check is due, see
:mod:`gateway.replaywatch`) and the configuration directory still passes its
check, and the node is not in maintenance. The result is reused for a second or
two so that frequent probes cost nothing.
"""

from __future__ import annotations

import asyncio
import os
import platform
import resource
import shutil
import sys
import time
from importlib import metadata
from typing import TYPE_CHECKING, Any, Final

from redis.exceptions import RedisError

from gateway.deployment import check_deployment
from gateway.errors import NodeError
from gateway.replay import RedisReplayCache

if TYPE_CHECKING:
    from gateway.node import Node

_REDIS_TIMEOUT_S: Final = 0.5
_LIBRARIES: Final = (
    "starlette",
    "httpx",
    "pyjwt",
    "cryptography",
    "pydantic",
    "redis",
    "prometheus-client",
    "uvicorn",
)


class HealthChecker:
    """Runs the checks at most once per ``cache_s`` seconds."""

    def __init__(self, cache_s: float) -> None:
        self._cache_s = cache_s
        self._checked_at = -1e9
        self._result: dict[str, Any] | None = None
        self._lock = asyncio.Lock()

    async def check(self, node: Node) -> dict[str, Any]:
        """``{"status", "checks"}``; ``status`` is ``ok`` only if every check is."""
        async with self._lock:
            now = time.monotonic()
            if self._result is not None and now - self._checked_at < self._cache_s:
                return self._result
            checks = {
                "log": node.log.available,
                "signing_key": _has_active_key(node),
                "config": await asyncio.to_thread(_config_ok, node),
            }
            # Redis is checked only where it is configured; without it the node
            # keeps replay and rate-limit state to itself, and says so here.
            if node.redis is not None:
                checks["redis"] = await _redis_ok(node)
            replay = node.shared.replay
            if isinstance(replay, RedisReplayCache):
                checks["replay_store"] = await _replay_ok(replay)
            status = "ok" if all(checks.values()) else "unavailable"
            if node.ops.maintenance.on:
                status = "maintenance"
            shared = "redis" if node.redis is not None else "this node only"
            self._result = {"status": status, "checks": checks, "shared_state": shared}
            self._checked_at = now
            return self._result


def _has_active_key(node: Node) -> bool:
    try:
        node.keyring.active()
    except NodeError:
        return False
    return True


async def _redis_ok(node: Node) -> bool:
    if node.redis is None:
        return False
    try:
        async with asyncio.timeout(_REDIS_TIMEOUT_S):
            return bool(await node.redis.ping())
    except (TimeoutError, OSError, ConnectionError):
        return False
    except RedisError:
        return False


async def _replay_ok(replay: RedisReplayCache) -> bool:
    try:
        async with asyncio.timeout(_REDIS_TIMEOUT_S):
            return await replay.healthy()
    except TimeoutError:
        return False


def _config_ok(node: Node) -> bool:
    return not check_deployment(node.deployment.config_dir)


def environment(node: Node) -> dict[str, Any]:
    """Facts of the host and the software: no path, key or secret."""
    settings = node.deployment.settings
    log_path = node.deployment.path(settings.log.sqlite_path)
    disk = shutil.disk_usage(log_path.parent)
    return {
        "node_id": settings.node_id,
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "platform": platform.system(),
        "cpu_count": os.cpu_count(),
        "memory": _memory(),
        "log_store": {
            "kind": settings.log.store,
            "bytes": _size(log_path),
            "disk_total_bytes": disk.total,
            "disk_free_bytes": disk.free,
        },
        "libraries": {name: _version(name) for name in _LIBRARIES},
        "maintenance": node.ops.maintenance.on,
    }


def _size(path: os.PathLike[str]) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _memory() -> dict[str, int | None]:
    facts: dict[str, int | None] = {"total_bytes": None, "available_bytes": None}
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                name, _, value = line.partition(":")
                if name == "MemTotal":
                    facts["total_bytes"] = int(value.split()[0]) * 1024
                elif name == "MemAvailable":
                    facts["available_bytes"] = int(value.split()[0]) * 1024
    except (OSError, ValueError):
        return facts
    facts["process_max_rss_bytes"] = (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )
    return facts
