"""What a node runs around its exchanges: monitoring, metrics, metaservices and
the maintenance switch.

One :class:`Operations` object belongs to one node. The exchange handler calls
:meth:`Operations.observe` once per exchange, after the record is logged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from gateway.admin.auth import AdminAuthenticator, load_admins
from gateway.admin.framework import Route
from gateway.admin.health import HealthChecker
from gateway.admin.routing import all_routes
from gateway.admin.surface import AdminLimiter
from gateway.auth import ClientAuthenticator
from gateway.deployment import Deployment
from gateway.metaservices import MetaServices
from gateway.metrics import NodeMetrics
from gateway.monitoring import OpMonitor
from gateway.record import ExchangeRecord

if TYPE_CHECKING:
    from gateway.node import Node

log = structlog.get_logger("gateway.operations")


@dataclass
class Maintenance:
    """The maintenance switch: new exchanges are answered 503 while it is on."""

    on: bool = False
    since: float | None = None
    by: str | None = None
    in_flight: int = 0

    def set(self, on: bool, actor: str) -> None:
        self.on = on
        self.since = time.time() if on else None
        self.by = actor if on else None

    def to_json(self) -> dict[str, object]:
        return {
            "maintenance": self.on,
            "since": self.since,
            "by": self.by,
            "in_flight": self.in_flight,
        }


class Operations:
    """Monitoring, metrics, metaservices and maintenance of one node."""

    def __init__(self, node: Node) -> None:
        deployment = node.deployment
        settings = deployment.settings
        self._node = node
        self.monitor = OpMonitor(
            deployment.path(settings.monitoring.sqlite_path),
            retention_days=settings.monitoring.retention_days,
            queue_size=settings.monitoring.queue_size,
            write_interval_ms=settings.monitoring.write_interval_ms,
        )
        directory = deployment.directory
        self.metrics = NodeMetrics(
            (str(s.id) for s in directory.subsystems()),
            (str(s.id) for s in directory.services()),
        )
        self.maintenance = Maintenance()
        self.health = HealthChecker(settings.admin.health_cache_s)
        self.admin_limiter = AdminLimiter(settings.admin.rate)
        self.admin_routes: list[Route] = all_routes()
        self.admin_auth = self.admin_authenticator(deployment)
        self._meta: MetaServices | None = None
        self._meta_for: Deployment | None = None

    async def start(self) -> None:
        """Start the monitoring writer; raise NodeError if its store fails."""
        await self.monitor.start()
        self.metaservices()

    async def close(self) -> None:
        await self.monitor.close()

    def observe(self, record: ExchangeRecord) -> None:
        """Count and queue the monitoring record of one finished exchange."""
        self.monitor.observe(record)
        self.metrics.observe(record)

    def metaservices(self) -> MetaServices:
        """The metaservices of the node's current deployment (rebuilt on reload).

        :raises ConfigError: an OpenAPI document named by the directory is unusable.
        """
        node = self._node
        deployment = node.deployment
        if self._meta is None or self._meta_for is not deployment:
            settings = deployment.settings
            self._meta = MetaServices.load(
                deployment.config_dir,
                access=deployment.policies.access,
                authenticator=self.client_authenticator(),
                public_url=str(settings.public_url),
                node_id=settings.node_id,
            )
            self._meta_for = deployment
        return self._meta

    def admin_authenticator(self, deployment: Deployment) -> AdminAuthenticator:
        """An authenticator of admin callers as ``deployment`` names them: the
        admins of its admins.yaml, and clients by the keys of its directory.

        :raises ConfigError: admins.yaml is malformed or names an unusable key.
        """
        settings = deployment.settings
        return AdminAuthenticator(
            admins=load_admins(deployment.config_dir / settings.admin.admins_file),
            keys_file=deployment.path(settings.admin.api_keys_file),
            audience=settings.auth.audience,
            max_lifetime_s=settings.auth.max_token_lifetime_s,
            leeway_s=settings.auth.leeway_s,
            clients=self.client_authenticator(deployment),
        )

    def client_authenticator(
        self, deployment: Deployment | None = None
    ) -> ClientAuthenticator:
        """An authenticator for departmental clients of ``deployment`` (default: the
        node's), sharing the replay cache."""
        deployment = deployment or self._node.deployment
        return ClientAuthenticator(
            deployment.directory,
            deployment.settings.auth,
            self._node.shared.replay,
            max_authorization_bytes=deployment.settings.limits.max_authorization_bytes,
        )
