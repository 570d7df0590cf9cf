"""Sealing records: canonical bytes, hashes, and records that cannot be logged."""

from __future__ import annotations

import hashlib
import math
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import NodeError, Reason
from gateway.msglog import merkle
from gateway.msglog.records import RecordError, fast_canonical_bytes, parse, seal
from tests.gateway.msglog.conftest import make_record


def test_seal_assigns_seq_and_prev_hash() -> None:
    sealed = seal(make_record(1), 7, "ab" * 32)
    assert parse(sealed.canonical)["seq"] == 7
    assert parse(sealed.canonical)["prev_hash"] == "ab" * 32


def test_hash_and_leaf_are_of_the_canonical_bytes() -> None:
    sealed = seal(make_record(1), 0, "")
    assert sealed.hash == hashlib.sha256(sealed.canonical).hexdigest()
    assert sealed.leaf_hash == merkle.leaf_hash(sealed.canonical)


def test_canonical_bytes_sort_keys_without_whitespace() -> None:
    sealed = seal(make_record(1), 0, "")
    assert sealed.canonical.startswith(b'{"client_id":"WB/GOV/SED/ifms","decision":')
    assert b" " not in sealed.canonical


def test_seal_fills_search_columns() -> None:
    sealed = seal(make_record(3, message_id="m-3"), 0, "")
    assert (sealed.message_id, sealed.decision) == ("m-3", "denied")
    assert sealed.client_id == "WB/GOV/SED/ifms"


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"status": math.nan}, "FloatDomainError"),
        ({"status": math.inf}, "FloatDomainError"),
        ({"status": 2**60}, "IntegerDomainError"),
        ({"extra": object()}, "CanonicalizationError"),
        ({"extra": {1: "x"}}, "CanonicalizationError"),
        ({"decision": "maybe"}, "decision is not one of"),
        ({"seq": 4}, "assigned by the log"),
        ({"hash": "00"}, "assigned by the log"),
        ({"ts": "yesterday"}, "ts is not a number"),
    ],
    ids=["nan", "inf", "big-int", "object", "int-key", "decision", "seq", "hash", "ts"],
)
def test_unloggable_record_raises_record_error(
    change: dict[str, Any], match: str
) -> None:
    with pytest.raises(RecordError, match=match):
        seal({**make_record(1), **change}, 0, "")


def test_missing_key_is_named() -> None:
    record = make_record(1)
    del record["status"]
    with pytest.raises(RecordError, match="missing keys status"):
        seal(record, 0, "")


def test_record_error_is_an_internal_node_error() -> None:
    with pytest.raises(NodeError) as caught:
        seal({**make_record(1), "status": math.nan}, 0, "")
    assert caught.value.reason is Reason.INTERNAL_ERROR


def test_parse_rejects_non_object() -> None:
    with pytest.raises(ValueError, match="JSON object"):
        parse(b"[1]")


_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=12), _json_values, max_size=8))
def test_fast_canonical_bytes_are_rfc8785_or_declined(value: dict[str, Any]) -> None:
    fast = fast_canonical_bytes(value)
    try:
        expected: bytes | None = rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, ValueError, TypeError):
        expected = None
    if fast is not None:
        assert fast == expected


def test_fast_path_covers_exchange_records() -> None:
    record = {**make_record(7), "seq": 7, "prev_hash": "ab" * 32}
    record["duration_ms"] = {"frame": 0.125, "auth": 1.5, "total": 12.0}
    assert fast_canonical_bytes(record) == rfc8785.dumps(record)
