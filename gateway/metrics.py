"""Prometheus metrics of one node, in a registry of its own.

Counters and histograms move as exchanges finish; gauges for the message log, the
sealer and the keys are read when ``/admin/metrics`` is scraped. Label values come
from verified facts only: a client label is an authenticated client id, and a
service label is a directory service (or ``other``), so a caller cannot grow the
number of series by sending made-up identifiers.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any, Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from gateway.keyring import PublicKeyEntry
from gateway.metaservices import LIST_CLIENTS, PROVIDER_CODES
from gateway.record import ExchangeRecord

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
_STEP_BUCKETS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
_DAY: Final = 86400.0


class NodeMetrics:
    """The metrics of one node; known clients and services bound the labels."""

    def __init__(
        self, known_clients: Iterable[str], known_services: Iterable[str]
    ) -> None:
        self._clients = frozenset(known_clients)
        self._services = frozenset(known_services)
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.exchanges = Counter(
            "mediator_exchanges",
            "Exchanges by client, service, decision and status",
            ("client", "service", "decision", "status"),
            registry=r,
        )
        self.step_seconds = Histogram(
            "mediator_step_duration_seconds",
            "Time spent in each pipeline step",
            ("step",),
            buckets=_STEP_BUCKETS,
            registry=r,
        )
        #: The step histogram's children by step: ``labels()`` costs a lookup
        #: under a lock on every call, and every exchange observes a dozen steps.
        self._steps: dict[str, Any] = {}
        self.exchange_seconds = Histogram(
            "mediator_exchange_duration_seconds",
            "Time from the first byte read to the answer",
            buckets=_STEP_BUCKETS,
            registry=r,
        )
        self.log_records = Gauge(
            "mediator_log_records", "Records in the message log", registry=r
        )
        self.log_unsealed = Gauge(
            "mediator_log_unsealed_records",
            "Records written since the last checkpoint",
            registry=r,
        )
        self.checkpoint_age = Gauge(
            "mediator_log_checkpoint_age_seconds",
            "Age of the last checkpoint (-1 when there is none)",
            registry=r,
        )
        self.log_available = Gauge(
            "mediator_log_available",
            "1 when the message log can be written",
            registry=r,
        )
        self.key_age_days = Gauge(
            "mediator_key_age_days",
            "Days since a key was created",
            ("kid", "state"),
            registry=r,
        )
        self.key_expiry_days = Gauge(
            "mediator_key_days_to_expiry",
            "Days until a key should be rotated (negative: overdue)",
            ("kid", "state"),
            registry=r,
        )
        self.opmon_dropped = Gauge(
            "mediator_opmon_dropped_records",
            "Monitoring records dropped because the queue was full",
            registry=r,
        )
        self.opmon_queued = Gauge(
            "mediator_opmon_queued_records",
            "Monitoring records waiting for the writer",
            registry=r,
        )
        self.maintenance = Gauge(
            "mediator_maintenance", "1 while the node is in maintenance", registry=r
        )

    def observe(self, record: ExchangeRecord) -> None:
        """Count a finished exchange and its step times."""
        self.exchanges.labels(
            client=self.client_label(record.client_id),
            service=self.service_label(record.service_id),
            decision=record.decision.value,
            status=str(record.status),
        ).inc()
        steps = self._steps
        for step, ms in record.durations_ms.items():
            child = steps.get(step)
            if child is None:
                # Step names are the pipeline's own, a fixed small set.
                child = steps[step] = self.step_seconds.labels(step=step)
            child.observe(ms / 1000)
        self.exchange_seconds.observe(record.total_ms() / 1000)

    def client_label(self, client_id: str | None) -> str:
        if client_id is None:
            return "anonymous"
        return client_id if client_id in self._clients else "other"

    def service_label(self, service_id: str | None) -> str:
        if service_id is None:
            return "none"
        if service_id in self._services:
            return service_id
        code = service_id.rsplit("/", 1)[-1]
        return code if code in PROVIDER_CODES or code == LIST_CLIENTS else "other"

    def set_log(
        self,
        *,
        available: bool,
        size: int,
        sealed_size: int,
        checkpoint_ts: float | None,
        now: float | None = None,
    ) -> None:
        """The message log and sealer gauges."""
        now = time.time() if now is None else now
        self.log_available.set(1 if available else 0)
        self.log_records.set(size)
        self.log_unsealed.set(max(0, size - sealed_size))
        self.checkpoint_age.set(-1 if checkpoint_ts is None else now - checkpoint_ts)

    def set_keys(
        self,
        keys: Mapping[str, PublicKeyEntry],
        lifetime_days: int,
        now: float | None = None,
    ) -> None:
        """Age and days to expiry of every key that is not revoked."""
        now = time.time() if now is None else now
        self.key_age_days.clear()
        self.key_expiry_days.clear()
        for facts in key_facts(keys, lifetime_days, now):
            labels = {"kid": facts["kid"], "state": facts["state"]}
            self.key_age_days.labels(**labels).set(facts["age_days"])
            self.key_expiry_days.labels(**labels).set(facts["days_to_expiry"])

    def render(self) -> bytes:
        return generate_latest(self.registry)


def key_facts(
    keys: Mapping[str, PublicKeyEntry], lifetime_days: int, now: float
) -> list[dict[str, Any]]:
    """Public facts of each key that is not revoked: state, age, days to expiry.

    A key expires ``lifetime_days`` after it starts signing (its activation time,
    else its creation time).
    """
    facts: list[dict[str, Any]] = []
    for kid in sorted(keys):
        entry = keys[kid]
        if entry.state.value == "revoked":
            continue
        start = entry.activate_at or entry.created_at
        expires = start + lifetime_days * _DAY
        facts.append(
            {
                "kid": kid,
                "algorithm": entry.algorithm,
                "state": entry.state.value,
                "created_at": entry.created_at,
                "activate_at": entry.activate_at,
                "retired_at": entry.retired_at,
                "age_days": round((now - entry.created_at) / _DAY, 2),
                "days_to_expiry": round((expires - now) / _DAY, 2),
            }
        )
    return facts
