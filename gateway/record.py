"""The record of one exchange, filled in step by step and logged at the end.

The same facts go to the message log (as the record) and to the structured log line
(a subset). Values come from verified credentials and from the node's own parsing:
the path is stored escaped as received, never decoded; bodies only as digests.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Decision(StrEnum):
    FORWARDED = "forwarded"
    REJECTED = "rejected"  # the message itself is not acceptable (steps 1-3, 7)
    DENIED = "denied"  # a policy said no (steps 2, 4-6)
    UPSTREAM_ERROR = "upstream_error"  # the provider failed (steps 8-10)
    NODE_ERROR = "node_error"  # this node could not serve safely
    SERVED = "served"  # answered by the node itself (metaservices)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class ExchangeRecord:
    """What is known of an exchange so far; ``to_log()`` gives the logged form."""

    node_id: str
    method: str
    path: str
    peer: str | None
    #: The client address the node decided on (C14): the peer, or what a trusted
    #: proxy forwarded; and the X-Forwarded-For the request claimed, escaped.
    client_ip: str | None = None
    claimed_forwarded_for: str | None = None
    user_id: str | None = None
    message_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.time)
    started_mono: float = field(default_factory=time.perf_counter)
    step: str = "frame"
    client_id: str | None = None
    key_id: str | None = None
    jti_hash: str | None = None
    service_id: str | None = None
    endpoint: str | None = None
    rule_id: str | None = None
    purpose: str | None = None
    lawful_basis: str | None = None
    consent_id: str | None = None
    subject_hash: str | None = None
    adapter: str | None = None
    decision: Decision = Decision.REJECTED
    status: int = 0
    reason: str | None = None
    upstream_called: bool = False
    upstream_attempts: int = 0
    upstream_status: int | None = None
    request_bytes: int = 0
    #: The Content-Length the client declared, if any (C19: kept on a 413 too).
    declared_length: int | None = None
    response_bytes: int = 0
    request_body_sha256: str | None = None
    #: True when the client sent a Content-Digest and it matched the received bytes.
    client_digest_verified: bool = False
    forwarded_body_sha256: str | None = None
    upstream_body_sha256: str | None = None
    response_body_sha256: str | None = None
    request_signature_kid: str | None = None
    upstream_signature_kid: str | None = None
    #: The node key that signed the response to the client (step 11).
    response_signature_kid: str | None = None
    durations_ms: dict[str, float] = field(default_factory=dict)
    #: The request body as received and the response body as sent, for the
    #: encrypted body log only: never in ``to_log()`` or ``to_event()``.
    request_body: bytes | None = field(default=None, repr=False)
    response_body: bytes | None = field(default=None, repr=False)
    #: True once the request record is durable (step 8): the exchange's final
    #: record is then its response record.
    request_logged: bool = False
    _mark: float = field(default_factory=time.perf_counter)

    def enter(self, step: str) -> None:
        """Close the timing of the current step and start ``step``."""
        now = time.perf_counter()
        self.durations_ms[self.step] = round((now - self._mark) * 1000, 3)
        self.step, self._mark = step, now

    def total_ms(self) -> float:
        return round((time.perf_counter() - self.started_mono) * 1000, 3)

    def to_log(self) -> dict[str, Any]:
        """The message-log record: JSON types only, no body, no token, no raw id."""
        record: dict[str, Any] = {
            "ts": round(self.started, 6),
            "message_id": self.message_id,
            "request_id": self.request_id,
            "node_id": self.node_id,
            "direction": "response" if self.request_logged else "exchange",
            "peer": self.peer,
            "client_ip": self.client_ip,
            "claimed_forwarded_for": self.claimed_forwarded_for,
            "user_id": self.user_id,
            "client_id": self.client_id,
            "key_id": self.key_id,
            "jti_hash": self.jti_hash,
            "service_id": self.service_id,
            "method": self.method,
            "path": self.path,
            "rule_id": self.rule_id,
            "purpose": self.purpose,
            "lawful_basis": self.lawful_basis,
            "consent_id": self.consent_id,
            "subject_hash": self.subject_hash,
            "adapter": self.adapter,
            "decision": self.decision.value,
            "status": self.status,
            "reason": self.reason,
            "step": self.step,
            "upstream_called": self.upstream_called,
            "upstream_attempts": self.upstream_attempts,
            "upstream_status": self.upstream_status,
            "request_bytes": self.request_bytes,
            "declared_length": self.declared_length,
            "request_body_sha256": self.request_body_sha256,
            "client_digest_verified": self.client_digest_verified,
            "forwarded_body_sha256": self.forwarded_body_sha256,
            "upstream_body_sha256": self.upstream_body_sha256,
            "response_body_sha256": self.response_body_sha256,
            "request_signature_kid": self.request_signature_kid,
            "upstream_signature_kid": self.upstream_signature_kid,
            "response_signature_kid": self.response_signature_kid,
            "duration_ms": {k: float(v) for k, v in self.durations_ms.items()},
        }
        return record

    def to_request_log(self) -> dict[str, Any]:
        """The request record, logged before anything leaves the node (step 8).

        What the node is about to send and on whose authority; the response
        record that follows under the same message id says how it ended.
        """
        record = self.to_log()
        record.update(
            direction="request",
            decision=Decision.FORWARDED.value,
            status=0,
            reason=None,
            upstream_attempts=0,
            upstream_status=None,
            upstream_body_sha256=None,
            response_body_sha256=None,
            upstream_signature_kid=None,
            response_signature_kid=None,
        )
        return record

    def to_event(self) -> dict[str, Any]:
        """The fields of the one structured log line per exchange."""
        return {
            "message_id": self.message_id,
            "request_id": self.request_id,
            "client_id": self.client_id,
            "service_id": self.service_id,
            "method": self.method,
            "decision": self.decision.value,
            "status": self.status,
            "reason": self.reason,
            "step": self.step,
            "purpose": self.purpose,
            "upstream_attempts": self.upstream_attempts,
            "duration_ms": self.total_ms(),
            "steps_ms": dict(self.durations_ms),
        }
