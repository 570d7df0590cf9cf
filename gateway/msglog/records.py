"""Message log records: what the pipeline hands in, and the sealed form that is stored.

The pipeline appends a plain dict of JSON values. The log adds ``seq`` (0-based,
contiguous) and ``prev_hash`` (the previous record's ``hash``, ``""`` for the
first), serialises the result as RFC 8785 canonical JSON, and seals it: ``hash`` is
the hex SHA-256 of those canonical bytes, and the Merkle leaf is their RFC 9162
leaf hash. The canonical bytes are stored exactly as hashed, so the verifier never
needs to re-serialise anything.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import rfc8785

from gateway.errors import NodeError, Reason
from gateway.msglog.merkle import leaf_hash
from gateway.record import Decision

DECISIONS = frozenset(decision.value for decision in Decision)

REQUIRED_KEYS = frozenset(
    {
        "ts",
        "message_id",
        "request_id",
        "node_id",
        "client_id",
        "service_id",
        "method",
        "path",
        "decision",
        "status",
        "reason",
        "step",
        "upstream_called",
        "request_body_sha256",
        "response_body_sha256",
    }
)

#: Keys the log assigns; a record handed in must not carry them.
ASSIGNED_KEYS = frozenset({"seq", "prev_hash", "hash"})


class RecordError(NodeError):
    """A record cannot be logged as given: a programming error in the caller.

    Raised for a missing or log-assigned key, an unknown decision, or a value that
    RFC 8785 cannot represent exactly (NaN, infinity, a non-JSON type). The record
    is never stored. ``detail`` names the key or the problem, never a value.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(Reason.INTERNAL_ERROR, log_reason="log_record_invalid")
        self.detail = detail

    def __str__(self) -> str:
        return f"log record invalid: {self.detail}"


@dataclass(frozen=True, slots=True)
class SealedRecord:
    """A record ready to store: its canonical bytes, hashes and search columns."""

    seq: int
    hash: str
    leaf_hash: bytes
    canonical: bytes
    ts: float
    message_id: str
    client_id: str | None
    service_id: str | None
    decision: str
    subject_hash: str | None = None
    #: The encrypted body entries stored beside the record (canonical JSON).
    bodies: bytes | None = None


def check_record(record: Mapping[str, Any]) -> None:
    """Check the keys and decision of a record handed to the log.

    Raises RecordError naming the first problem.
    """
    missing = sorted(REQUIRED_KEYS - record.keys())
    if missing:
        raise RecordError(f"missing keys {', '.join(missing)}")
    assigned = sorted(ASSIGNED_KEYS & record.keys())
    if assigned:
        raise RecordError(f"keys {', '.join(assigned)} are assigned by the log")
    if record["decision"] not in DECISIONS:
        raise RecordError("decision is not one of " + ", ".join(sorted(DECISIONS)))
    if not isinstance(record["message_id"], str):
        raise RecordError("message_id is not a string")
    if isinstance(record["ts"], bool) or not isinstance(record["ts"], int | float):
        raise RecordError("ts is not a number")


def canonical_bytes(value: Mapping[str, Any]) -> bytes:
    """RFC 8785 canonical JSON of ``value``.

    Raises RecordError for NaN, infinities, integers beyond 2**53, non-string keys
    or values that are not JSON types.
    """
    fast = fast_canonical_bytes(value)
    if fast is not None:
        return fast
    try:
        return rfc8785.dumps(dict(value))
    except rfc8785.CanonicalizationError as exc:
        raise RecordError(type(exc).__name__) from exc


class _NotFastError(Exception):
    """A value the fast path does not cover: RFC 8785 itself must serialise it."""


_MAX_EXACT_INT = 2**53
#: Between these magnitudes ECMAScript and the shortest round-trip repr agree on a
#: non-integral float (fixed notation, same digits); outside, exponents differ.
_FIXED_MIN, _FIXED_MAX = 1e-4, 1e16


def fast_canonical_bytes(value: Mapping[str, Any]) -> bytes | None:
    """RFC 8785 bytes through orjson, or None where only RFC 8785 is exact.

    Covers objects with ASCII keys whose values are strings, integers within
    2**53, booleans, None, lists, objects, and floats that are integral below 2**53
    or of magnitude in [1e-4, 1e16). For those, sorted-key compact orjson output is
    byte for byte RFC 8785 (tested against ``rfc8785`` over random records). Never
    raises: anything else, including strings orjson rejects, gives None.
    """
    try:
        return orjson.dumps(_fast(dict(value)), option=orjson.OPT_SORT_KEYS)
    except (_NotFastError, orjson.JSONEncodeError):
        return None


def _fast(value: Any) -> Any:
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is int:
        if -_MAX_EXACT_INT <= value <= _MAX_EXACT_INT:
            return value
        raise _NotFastError
    if kind is float:
        return _fast_float(value)
    if kind is dict:
        if not all(type(key) is str and key.isascii() for key in value):
            raise _NotFastError
        return {key: _fast(item) for key, item in value.items()}
    if kind is list:
        return [_fast(item) for item in value]
    raise _NotFastError


def _fast_float(value: float) -> float | int:
    if value.is_integer():
        if abs(value) < _MAX_EXACT_INT:
            return int(value)
        raise _NotFastError
    if _FIXED_MIN <= abs(value) < _FIXED_MAX:
        return value
    raise _NotFastError


def record_hash(canonical: bytes) -> str:
    """The hex SHA-256 of a record's canonical bytes: its ``hash``."""
    return hashlib.sha256(canonical).hexdigest()


def seal(record: Mapping[str, Any], seq: int, prev_hash: str) -> SealedRecord:
    """Assign ``seq`` and ``prev_hash`` and seal the record.

    Raises RecordError if the record is not valid (see :func:`check_record`) or not
    representable as canonical JSON.
    """
    check_record(record)
    canonical = canonical_bytes({**record, "seq": seq, "prev_hash": prev_hash})

    ts, message_id, client_id, service_id, decision, subject_hash = search_columns(
        record
    )
    return SealedRecord(
        seq=seq,
        hash=record_hash(canonical),
        leaf_hash=leaf_hash(canonical),
        canonical=canonical,
        ts=ts,
        message_id=message_id,
        client_id=client_id,
        service_id=service_id,
        decision=decision,
        subject_hash=subject_hash,
    )


#: The search columns a record is stored with, in this order: ts, message_id,
#: client_id, service_id, decision, subject_hash.
SearchColumns = tuple[float, str, str | None, str | None, str, str | None]


def search_columns(record: Mapping[str, Any]) -> SearchColumns:
    """The values a record's searchable columns hold, derived from the record.

    Raises KeyError, TypeError or ValueError for a record that has no valid ones.
    """
    return (
        float(record["ts"]),
        str(record["message_id"]),
        _optional_str(record["client_id"]),
        _optional_str(record["service_id"]),
        str(record["decision"]),
        _optional_str(record.get("subject_hash")),
    )


def parse(canonical: bytes) -> dict[str, Any]:
    """The record dict from stored canonical bytes.

    Raises ValueError if the bytes are not a JSON object.
    """
    value = json.loads(canonical)
    if not isinstance(value, dict):
        # ValueError like a JSON syntax error: callers treat both as unreadable.
        raise ValueError("a log record is a JSON object")  # noqa: TRY004
    return value


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)
