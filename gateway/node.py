"""A running node: the services an exchange needs, started and stopped together."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx
import redis.asyncio as aioredis
import structlog

from gateway.auth import ClientAuthenticator
from gateway.deployment import Deployment
from gateway.exchange import ExchangePipeline
from gateway.keyring import Keyring
from gateway.msglog.log import MessageLog
from gateway.msglog.store import SqliteLogStore
from gateway.replay import MemoryReplayCache, RedisReplayCache, ReplayCache
from gateway.secrets import Secret, read_passphrase
from gateway.subjects import SubjectHasher
from gateway.throttle import Throttle
from gateway.upstream import Upstream, make_client
from policies.consent import ConsentStore

log = structlog.get_logger("gateway.node")


@dataclass
class Node:
    deployment: Deployment
    keyring: Keyring
    log: MessageLog
    consents: ConsentStore
    upstream: Upstream
    pipeline: ExchangePipeline
    redis: aioredis.Redis | None
    allowed_hosts: frozenset[str]

    @classmethod
    async def start(
        cls,
        deployment: Deployment,
        *,
        http_client: httpx.AsyncClient | None = None,
        passphrase: Secret | None = None,
    ) -> Node:
        """Open the keyring, the message log and the stores; raise ConfigError."""
        settings = deployment.settings
        state = deployment.state_dir
        if passphrase is None:
            file = settings.keyring.passphrase_file
            passphrase = read_passphrase(
                settings.keyring.passphrase_env,
                deployment.path(file) if file else None,
            )
        keyring = Keyring.load(deployment.path(settings.keyring.path), passphrase)

        message_log = MessageLog(
            SqliteLogStore(deployment.path(settings.log.sqlite_path)),
            group_commit_ms=settings.log.group_commit_ms,
            group_commit_max=settings.log.group_commit_max,
            checkpoint_interval_s=settings.log.checkpoint_interval_s,
            signer=keyring,
            origin=settings.node_id,
        )
        await message_log.start()
        consents = await ConsentStore.open(deployment.path(settings.consent_db))

        redis_client: aioredis.Redis | None = None
        replay: ReplayCache
        if settings.redis.url:
            redis_client = aioredis.from_url(settings.redis.url)
            replay = RedisReplayCache(redis_client)
        else:
            replay = MemoryReplayCache()
            log.warning(
                "node.no_redis",
                detail="replay cache and rate limits are kept per node",
            )

        upstream = Upstream(
            http_client or make_client(settings.upstream), settings.upstream
        )
        pipeline = ExchangePipeline(
            settings=settings,
            directory=deployment.directory,
            policies=deployment.policies,
            adapters=deployment.adapters,
            authenticator=ClientAuthenticator(
                deployment.directory,
                settings.auth,
                replay,
                max_authorization_bytes=settings.limits.max_authorization_bytes,
            ),
            throttle=Throttle(
                settings.limits.default_rate,
                settings.limits.max_concurrent_per_client,
                settings.redis.url,
            ),
            consents=consents,
            keyring=keyring,
            upstream=upstream,
            subjects=SubjectHasher.from_state(state, settings.log.subject_hash_key_env),
        )
        log.info(
            "node.started",
            node_id=settings.node_id,
            services=len(deployment.directory.services()),
            key_id=keyring.active().kid,
            redis=settings.redis.url is not None,
        )
        return cls(
            deployment=deployment,
            keyring=keyring,
            log=message_log,
            consents=consents,
            upstream=upstream,
            pipeline=pipeline,
            redis=redis_client,
            allowed_hosts=frozenset(h.lower() for h in settings.allowed_hosts),
        )

    async def stop(self) -> None:
        """Close in reverse order; the message log seals a last checkpoint."""
        await self.upstream.aclose()
        await self.consents.close()
        await self.log.close()
        if self.redis is not None:
            await self.redis.aclose()
        log.info("node.stopped", node_id=self.deployment.settings.node_id)

    @property
    def state_dir(self) -> Path:
        return self.deployment.state_dir
