"""A running node: the services an exchange needs, started and stopped together.

:meth:`Node.reload` swaps in a new configuration (directory, policies, adapters and
the pipeline built from them) in one attribute assignment; an exchange reads
``node.pipeline`` once, so exchanges in flight finish on the configuration they
started with, and a configuration that fails the check never replaces the running one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx
import redis.asyncio as aioredis
import structlog

from gateway.admin.auth import AdminAuthenticator
from gateway.admission import Admission
from gateway.auth import ClientAuthenticator, longest_use_ttl
from gateway.deployment import Deployment, ReloadRefusedError, load_checked
from gateway.errors import ConfigError
from gateway.exchange import ExchangePipeline
from gateway.hsm import HsmToken
from gateway.keyring import Keyring
from gateway.keywatch import KeyringWatcher
from gateway.msglog.log import MessageLog
from gateway.msglog.stores import body_log_for, store_from_settings
from gateway.operations import Operations
from gateway.replay import MemoryReplayCache, ReplayCache, open_replay_cache
from gateway.replaywatch import check_replay_store
from gateway.secrets import Secret, read_passphrase
from gateway.subjects import SubjectHasher
from gateway.throttle import Throttle
from gateway.upstream import Upstream, make_client
from policies.consent import ConsentBackend, open_consent_store

log = structlog.get_logger("gateway.node")


def freeze_long_lived() -> None:
    """Collect garbage, then hide every object alive now from the cyclic collector.

    A started node holds some 100,000 objects (configuration, compiled adapters,
    imported modules) that live as long as the process. Every full collection
    visited all of them, and under load one ran every few seconds and stopped the
    event loop for 35-50 ms, every exchange in flight with it. Frozen
    (:func:`gc.freeze`), they are skipped and a full collection takes about 1 ms.
    Reference counting still frees them; only cycles among them would outlive
    their use, so a reload freezes anew.
    """
    gc.collect()
    gc.freeze()


@dataclass(frozen=True)
class _Shared:
    """What a reload keeps: the services that do not come from config files."""

    replay: ReplayCache
    throttle: Throttle
    consents: ConsentBackend
    keyring: Keyring
    upstream: Upstream
    subjects: SubjectHasher
    log: MessageLog


def _admin_auth(ops: Operations, deployment: Deployment) -> AdminAuthenticator:
    """The admin authenticator of a reloaded deployment; raise ReloadRefusedError.

    admins.yaml is checked with the rest, but it may have changed since.
    """
    try:
        return ops.admin_authenticator(deployment)
    except ConfigError as exc:
        raise ReloadRefusedError(deployment.config_dir, [exc]) from exc


def _build_pipeline(deployment: Deployment, shared: _Shared) -> ExchangePipeline:
    settings = deployment.settings
    return ExchangePipeline(
        settings=settings,
        directory=deployment.directory,
        policies=deployment.policies,
        adapters=deployment.adapters,
        authenticator=ClientAuthenticator(
            deployment.directory,
            settings.auth,
            shared.replay,
            max_authorization_bytes=settings.limits.max_authorization_bytes,
        ),
        admission=Admission(shared.replay, shared.throttle),
        consents=shared.consents,
        keyring=shared.keyring,
        upstream=shared.upstream,
        subjects=shared.subjects,
        log_request=shared.log.append,
    )


@dataclass
class Node:
    deployment: Deployment
    keyring: Keyring
    log: MessageLog
    consents: ConsentBackend
    upstream: Upstream
    pipeline: ExchangePipeline
    redis: aioredis.Redis | None
    allowed_hosts: frozenset[str]
    shared: _Shared
    _reloading: anyio.Lock = field(default_factory=anyio.Lock, repr=False)
    #: Monitoring, metrics, metaservices and maintenance (set by start()).
    ops: Operations = field(init=False, repr=False)
    #: Reloads the keyring on a Redis notice or a periodic re-read (set by start()).
    keywatch: KeyringWatcher = field(init=False, repr=False)

    @classmethod
    async def start(
        cls,
        deployment: Deployment,
        *,
        http_client: httpx.AsyncClient | None = None,
        passphrase: Secret | None = None,
    ) -> Node:
        """Open the keyring, the message log and the stores; raise ConfigError.

        What was opened before a step that fails is closed again, in reverse
        order, before the error propagates.
        """
        async with contextlib.AsyncExitStack() as opened:
            node = await cls._open(
                deployment, opened, http_client=http_client, passphrase=passphrase
            )
            opened.pop_all()
        return node

    @classmethod
    async def _open(
        cls,
        deployment: Deployment,
        opened: contextlib.AsyncExitStack,
        *,
        http_client: httpx.AsyncClient | None,
        passphrase: Secret | None,
    ) -> Node:
        settings = deployment.settings
        state = deployment.state_dir
        replay_checked = await check_replay_store(settings.redis)
        if passphrase is None:
            file = settings.keyring.passphrase_file
            passphrase = read_passphrase(
                settings.keyring.passphrase_env,
                deployment.path(file) if file else None,
            )
        hsm = settings.keyring.hsm
        keyring = Keyring.load(
            deployment.path(settings.keyring.path),
            passphrase,
            retain_s=settings.keyring.retired_verify_days * 86_400,
            hsm=HsmToken.from_settings(hsm, deployment.path) if hsm else None,
        )
        opened.callback(keyring.close)

        log_store = store_from_settings(settings.log, deployment.path)
        message_log = MessageLog(
            log_store,
            bodies=body_log_for(deployment, log_store),
            group_commit_ms=settings.log.group_commit_ms,
            group_commit_max=settings.log.group_commit_max,
            checkpoint_interval_s=settings.log.checkpoint_interval_s,
            signer=keyring,
            origin=settings.node_id,
        )
        await message_log.start()
        opened.push_async_callback(message_log.close)
        consents = await open_consent_store(
            settings.consent_store.store,
            sqlite_path=deployment.path(settings.consent_db),
            postgres_dsn=settings.consent_store.postgres_dsn,
            postgres_schema=settings.consent_store.postgres_schema,
            signer=keyring,
        )
        opened.push_async_callback(consents.close)

        redis_client: aioredis.Redis | None = None
        replay: ReplayCache
        if settings.redis.url:
            redis_client = aioredis.from_url(settings.redis.url)
            opened.push_async_callback(redis_client.aclose)
            replay = open_replay_cache(
                settings.redis,
                redis_client,
                checked=replay_checked,
                hold_s=longest_use_ttl(settings.auth),
            )
            if replay_checked:
                # The first reading of Redis's count of evicted keys: from now on
                # an eviction keeps the replay store closed (gateway.replaywatch).
                await replay.check()
        else:
            replay = MemoryReplayCache(settings.auth.memory_replay_entries)
            log.warning(
                "node.no_redis",
                detail="replay cache and rate limits are kept per node",
            )
        opened.push_async_callback(replay.aclose)

        upstream = Upstream(
            http_client or make_client(settings.upstream), settings.upstream
        )
        opened.push_async_callback(upstream.aclose)
        shared = _Shared(
            replay=replay,
            throttle=Throttle(
                settings.limits.default_rate,
                settings.limits.max_concurrent_per_client,
                redis=redis_client,
            ),
            consents=consents,
            keyring=keyring,
            upstream=upstream,
            subjects=SubjectHasher.from_state(state, settings.log.subject_hash_key_env),
            log=message_log,
        )
        await shared.throttle.preload()
        pipeline = _build_pipeline(deployment, shared)
        opened.push_async_callback(pipeline.aclose)
        node = cls(
            deployment=deployment,
            keyring=keyring,
            log=message_log,
            consents=consents,
            upstream=upstream,
            pipeline=pipeline,
            redis=redis_client,
            allowed_hosts=frozenset(h.lower() for h in settings.allowed_hosts),
            shared=shared,
        )
        node.keywatch = KeyringWatcher(
            keyring,
            interval_s=settings.keyring.reload_interval_s,
            redis_client=redis_client,
            channel=settings.keyring.notify_channel,
        )
        await node.keywatch.start()
        opened.push_async_callback(node.keywatch.stop)
        node.ops = Operations(node)
        await node.ops.start()
        log.info(
            "node.started",
            node_id=settings.node_id,
            services=len(deployment.directory.services()),
            key_id=keyring.active().kid,
            redis=settings.redis.url is not None,
        )
        return node

    async def reload(self) -> Deployment:
        """Check and load the config directory again, then swap it in.

        Directory, access rights, purposes and adapters take effect for the next
        exchange, admins.yaml and client keys for the next admin request;
        ``node.yaml`` changes need a restart (the running settings are
        kept, and a warning says so). Reloads run one at a time.

        :raises ReloadRefusedError: the new configuration fails the check (it carries
            every error); the running configuration stays in place.
        """
        async with self._reloading:
            current = self.deployment
            fresh = await anyio.to_thread.run_sync(
                load_checked, current.config_dir, current.state_dir
            )
            if fresh.settings != current.settings:
                log.warning("node.reload_settings_ignored", detail="restart to apply")
            fresh = dataclasses.replace(fresh, settings=current.settings)
            admin_auth = await anyio.to_thread.run_sync(_admin_auth, self.ops, fresh)
            self.pipeline = _build_pipeline(fresh, self.shared)  # the one swap
            self.deployment = fresh
            self.ops.admin_auth = admin_auth
        if gc.get_freeze_count():
            # The old configuration was frozen with the rest: let it be collected.
            gc.unfreeze()
            freeze_long_lived()
        log.info(
            "node.reloaded",
            node_id=current.settings.node_id,
            services=len(fresh.directory.services()),
            adapters=len(fresh.adapters),
        )
        return fresh

    async def stop(self) -> None:
        """Close in reverse order; the message log seals a last checkpoint."""
        await self.keywatch.stop()
        await self.ops.close()
        await self.upstream.aclose()
        await self.pipeline.aclose()
        await self.shared.replay.aclose()
        await self.consents.close()
        await self.log.close()
        self.keyring.close()
        if self.redis is not None:
            await self.redis.aclose()
        log.info("node.stopped", node_id=self.deployment.settings.node_id)

    @property
    def state_dir(self) -> Path:
        return self.deployment.state_dir
