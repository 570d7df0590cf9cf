"""Keeping every node's keyring current without a restart.

When ``mediator keys`` changes a keyring it publishes the new version on a Redis
channel (if Redis is configured). Every node listens on that channel and also
re-reads ``keyring.json`` every ``reload_interval_s`` seconds, so a node that
missed a notice (Redis down, subscription lost) switches within that interval.
A node therefore sees a change within ``reload_interval_s`` at worst, and within
a Redis round trip when notices arrive. A reload that fails (a half-copied
keyring, a wrong mode) keeps the keys the node has and logs why.
"""

from __future__ import annotations

import asyncio
import contextlib

import redis
import redis.asyncio as aioredis
import structlog

from gateway.errors import ConfigError
from gateway.keyring import Keyring

log = structlog.get_logger("gateway.keywatch")


def announce(url: str | None, channel: str, keyring: Keyring) -> bool:
    """Tell every node that ``keyring`` changed; return whether Redis took it.

    Without a Redis URL nothing is sent and nodes pick the change up on their next
    periodic re-read. A Redis failure is logged, not raised: the change is
    already on disk.
    """
    if not url:
        return False
    client = redis.Redis.from_url(url, socket_timeout=2)
    try:
        client.publish(channel, keyring.version)
    except redis.RedisError as exc:
        log.warning("keyring.announce_failed", error=type(exc).__name__)
        return False
    finally:
        client.close()
    return True


class KeyringWatcher:
    """A background task that reloads a node's keyring when it changes."""

    def __init__(
        self,
        keyring: Keyring,
        *,
        interval_s: float,
        redis_client: aioredis.Redis | None = None,
        channel: str = "mediator:keyring",
    ) -> None:
        self.keyring = keyring
        self.interval_s = interval_s
        self._redis = redis_client
        self._channel = channel
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start the periodic re-read and, with Redis, the subscription."""
        self._tasks.append(asyncio.create_task(self._poll(), name="keyring-poll"))
        if self._redis is not None:
            self._tasks.append(
                asyncio.create_task(self._listen(self._redis), name="keyring-listen")
            )

    async def stop(self) -> None:
        """Cancel both tasks and wait for them."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    def check(self) -> bool:
        """Reload now if keyring.json changed; return whether the keys changed."""
        before = self.keyring.version
        try:
            changed = self.keyring.reload()
        except ConfigError as exc:
            log.warning("keyring.reload_failed", file=exc.file, reason=exc.reason)
            return False
        if changed:
            log.info(
                "keyring.reloaded",
                key_id=self.keyring.key_id,
                version=self.keyring.version[:16],
                previous=before[:16],
            )
        return changed

    async def _poll(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            self._wake.clear()
            await asyncio.to_thread(self.check)

    async def _listen(self, client: aioredis.Redis) -> None:
        # A lost subscription is retried; meanwhile the periodic re-read covers.
        while True:
            try:
                await self._subscribe(client)
            except (aioredis.RedisError, OSError) as exc:
                log.warning("keyring.notice_lost", error=type(exc).__name__)
                await asyncio.sleep(self.interval_s)

    async def _subscribe(self, client: aioredis.Redis) -> None:
        async with client.pubsub() as pubsub:
            await pubsub.subscribe(self._channel)
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    self._wake.set()
