"""The message log: an append-only, tamper-evident record of every exchange.

Records are RFC 8785 canonical JSON, chained by ``prev_hash`` and made leaves of an
RFC 9162 Merkle tree whose roots are sealed in signed checkpoints. The writer
(:class:`MessageLog`) commits records in groups and fails closed; :func:`verify_log`
checks a whole log from its store and public keys; evidence bundles prove single
exchanges offline.
"""

from __future__ import annotations

from gateway.msglog.checkpoint import (
    Checkpoint,
    CheckpointSigner,
    KeySigner,
    PublicKey,
    load_jwks,
    public_jwk,
)
from gateway.msglog.evidence import (
    EvidenceError,
    EvidenceReport,
    export_evidence,
    verify_evidence,
)
from gateway.msglog.log import MessageLog, Receipt
from gateway.msglog.records import RecordError
from gateway.msglog.sqlite import SqliteLogStore
from gateway.msglog.store import LogStore, SearchQuery, StoreError
from gateway.msglog.verify import Problem, VerifyReport, verify_log

__all__ = [
    "Checkpoint",
    "CheckpointSigner",
    "EvidenceError",
    "EvidenceReport",
    "KeySigner",
    "LogStore",
    "MessageLog",
    "Problem",
    "PublicKey",
    "Receipt",
    "RecordError",
    "SearchQuery",
    "SqliteLogStore",
    "StoreError",
    "VerifyReport",
    "export_evidence",
    "load_jwks",
    "public_jwk",
    "verify_evidence",
    "verify_log",
]
