"""Tests for the strict JSON parser and the wire writer."""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import PayloadError, Reason
from gateway.jsonbody import dump_json, parse_json

SEARCH = b'{"udise_code":"19110900503","class":"V"}'


def reason_of(body: bytes, **options: Any) -> Reason:
    with pytest.raises(PayloadError) as caught:
        parse_json(body, **options)
    return caught.value.reason


def test_parse_json_returns_the_value() -> None:
    """A plain object parses to the same dict as the standard library gives."""
    assert parse_json(SEARCH) == {"udise_code": "19110900503", "class": "V"}


@pytest.mark.parametrize(
    ("body", "value"),
    [
        (b"0", 0),
        (b"-12.5e2", -1250.0),
        (b'"\\ud83d\\ude00"', "\U0001f600"),
        (b'"[{\\"]}"', '[{"]}'),
        ('"শোভন রায়"'.encode(), "শোভন রায়"),
        (b'" \xef\xbb\xbf "', " \ufeff "),
        (b'{"n":' + b"9" * 30 + b"}", {"n": int("9" * 30)}),
        (b'{"n":-' + b"9" * 30 + b"}", {"n": -int("9" * 30)}),
        (b' [1, {"a": null}] \n', [1, {"a": None}]),
    ],
)
def test_parse_json_accepts_valid_json(body: bytes, value: Any) -> None:
    """Valid JSON, also with escaped pairs, BOM-like text in strings and long ints."""
    assert parse_json(body) == value


def test_parse_json_strips_one_leading_bom() -> None:
    """C21: exactly one leading UTF-8 BOM is removed."""
    assert parse_json(b"\xef\xbb\xbf" + SEARCH) == parse_json(SEARCH)


@pytest.mark.parametrize(
    "body",
    [
        b"\xef\xbb\xbf\xef\xbb\xbf" + SEARCH,
        b" \xef\xbb\xbf" + SEARCH,
        SEARCH + b"\xef\xbb\xbf",
    ],
)
def test_parse_json_rejects_a_bom_that_is_not_the_first_bytes(body: bytes) -> None:
    """C21: a second BOM or one after other bytes is not JSON."""
    assert reason_of(body) is Reason.INVALID_JSON


@pytest.mark.parametrize(
    "body",
    [
        # C20: a cut Bengali sequence, Latin-1, overlong, encoded surrogate.
        b'{"name":"\xe0\xa6\xb8\xe0\xa7","class":"V"}',
        b'{"name":"Sumitra Ray\xe9"}',
        b'{"name":"\xc0\xaf"}',
        b'{"name":"\xed\xa0\x80"}',
        '{"name":"সুমিত্রা"}'.encode("utf-16-le"),
        # C20: escaped lone surrogates, in a value, a key and an array.
        b'{"name":"\\ud800"}',
        b'{"\\udc00":1}',
        b'["ok", ["\\uDBFF"]]',
        b'"\\ude00\\ud83d"',
    ],
)
def test_parse_json_rejects_invalid_encoding(body: bytes) -> None:
    """Bytes or escapes that are not UTF-8 are INVALID_ENCODING, never replaced."""
    assert reason_of(body) is Reason.INVALID_ENCODING


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; charset=utf-16",
        "application/json; charset=ISO-8859-1",
        'application/json; charset="latin1"',
        "application/json;charset=utf8",
    ],
)
def test_parse_json_rejects_a_charset_other_than_utf8(content_type: str) -> None:
    """C20: a declared non-UTF-8 charset is 415."""
    reason = reason_of(SEARCH, content_type=content_type)
    assert reason is Reason.UNSUPPORTED_MEDIA_TYPE
    assert reason.spec.status == 415


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "application/json",
        "application/json; charset=utf-8",
        'application/json; Charset="UTF-8"',
        "application/json; profile=x; charset=UTF-8",
    ],
)
def test_parse_json_accepts_utf8_media_types(content_type: str | None) -> None:
    """No charset, or charset utf-8 in any case, is accepted."""
    assert parse_json(SEARCH, content_type=content_type)["class"] == "V"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b'{"a":1} x',
        b'{"a":1}{"b":2}',
        b"{'a':1}",
        b'{"a":1,}',
        b'{"a":"line\nbreak"}',
        b'{"meal_days":NaN}',
        b'{"meal_days":Infinity}',
        b'{"meal_days":-Infinity}',
        b"[" * 10 + b'"unterminated',
        b'"\\',
    ],
)
def test_parse_json_rejects_invalid_json(body: bytes) -> None:
    """C24 B: NaN and Infinity, trailing data and syntax errors are INVALID_JSON."""
    assert reason_of(body) is Reason.INVALID_JSON


@pytest.mark.parametrize(
    "body",
    [
        b'{"student_id":"WB-2019-000123","meal_days":' + b"9" * 5000 + b"}",
        b'{"meal_days":' + b"9" * 31 + b"}",
        b'{"meal_days":-' + b"9" * 31 + b"}",
        b'{"student_id":"WB-2019-000123","attendance_pct":1e400}',
        b'{"attendance_pct":-1e400}',
        b"[1E999]",
    ],
)
def test_parse_json_rejects_numbers_out_of_range(body: bytes) -> None:
    """C24 A and C: long integers and non-finite floats are INVALID_NUMBER."""
    assert reason_of(body) is Reason.INVALID_NUMBER


def test_parse_json_rejects_a_huge_integer_quickly() -> None:
    """C24 A: a 5000-digit integer is refused before any conversion."""
    started = time.perf_counter()
    reason_of(b'{"n":' + b"9" * 5000 + b"}")
    assert time.perf_counter() - started < 0.05


@pytest.mark.parametrize(
    "body",
    [
        b'{"a":1,"a":2}',
        b'{"a":1,"a":1}',
        b'[{"x":{"k":1,"k":1}}]',
        b'{"a":1,"\\u0061":2}',
    ],
)
def test_parse_json_rejects_duplicate_keys(body: bytes) -> None:
    """A repeated key, also when spelt with an escape, is DUPLICATE_KEY."""
    assert reason_of(body) is Reason.DUPLICATE_KEY


@pytest.mark.parametrize(
    "body",
    [
        # C23: the 50 013-byte body.
        b'{"filter":' + b'{"and":[' * 5000 + b"{}" + b"]}" * 5000 + b"}",
        b"[" * 100_000 + b"]" * 100_000,
        b"[" * 100_000,
        b"[" * 33 + b"]" * 33,
    ],
)
def test_parse_json_rejects_deep_nesting(body: bytes) -> None:
    """C23: nesting past the limit is JSON_TOO_DEEP, never a RecursionError."""
    assert reason_of(body) is Reason.JSON_TOO_DEEP


def test_parse_json_allows_nesting_up_to_the_limit() -> None:
    """Exactly max_depth levels parse."""
    assert parse_json(b"[" * 32 + b"]" * 32, max_depth=32) is not None


@pytest.mark.parametrize(
    "body",
    [
        b'["' + b"[" * 100 + b'"]',
        b'{"k":"' + b"{" * 100 + b'\\"' + b"[" * 100 + b'"}',
        b'["\\\\", "' + b"[" * 100 + b'"]',
    ],
)
def test_depth_prescan_skips_brackets_inside_strings(body: bytes) -> None:
    """Brackets inside strings, also after escaped quotes, do not count."""
    assert parse_json(body, max_depth=2) is not None


def test_depth_limit_is_configurable() -> None:
    """A lower max_depth refuses what the default accepts."""
    body = b'{"a":{"b":[1]}}'
    assert parse_json(body) == {"a": {"b": [1]}}
    assert reason_of(body, max_depth=2) is Reason.JSON_TOO_DEEP


def test_parse_json_errors_carry_no_body_value() -> None:
    """Neither the error nor its chain holds text from the body."""
    with pytest.raises(PayloadError) as caught:
        parse_json(b'{"aadhaar":"999901234563",}')

    error = caught.value
    assert "999901234563" not in f"{error} {error.message} {error.log_reason}"
    assert error.__cause__ is None
    assert error.__suppress_context__


def test_parse_json_is_fast_for_a_1kb_object() -> None:
    """A 1 KB record parses in well under a millisecond (typically ~20 us)."""
    record = {f"field_{i}": f"value number {i}" for i in range(40)}
    record["marks"] = [1, 2.5, {"x": None}]
    body = dump_json(record)
    assert 900 < len(body) < 1400

    started = time.perf_counter()
    for _ in range(200):
        parse_json(body)
    assert (time.perf_counter() - started) / 200 < 0.0005


@given(st.binary(max_size=300))
def test_parse_json_raises_only_payload_errors_on_any_bytes(body: bytes) -> None:
    """Arbitrary bytes parse or raise PayloadError, nothing else."""
    with contextlib.suppress(PayloadError):
        parse_json(body)


@given(st.text(alphabet='[]{}"\\:,0123456789.eE+-ntrufalsNIy \ud800', max_size=80))
def test_parse_json_raises_only_payload_errors_on_json_like_text(text: str) -> None:
    """JSON-like text, lone surrogates included, raises nothing but PayloadError."""
    with contextlib.suppress(PayloadError):
        parse_json(text.encode("utf-8", "surrogatepass"), max_depth=4)


# -- dump_json ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        ({"a": 1, "b": [True, None]}, b'{"a":1,"b":[true,null]}'),
        ({"name": "শোভন"}, '{"name":"শোভন"}'.encode()),
        ({"n": 10**25}, b'{"n":10000000000000000000000000}'),
        ([1.5], b"[1.5]"),
    ],
)
def test_dump_json_writes_compact_utf8(value: Any, wire: bytes) -> None:
    """Compact UTF-8, also for integers beyond 64 bits."""
    assert dump_json(value) == wire


@pytest.mark.parametrize(
    "value",
    [
        {"x": math.nan},
        [math.inf],
        {"deep": [{"x": -math.inf}]},
        {"big": 10**25, "x": math.nan},
    ],
)
def test_dump_json_rejects_non_finite_numbers(value: Any) -> None:
    """NaN and Infinity are refused, never written as null."""
    with pytest.raises(PayloadError) as caught:
        dump_json(value)
    assert caught.value.reason is Reason.INVALID_NUMBER


def test_dump_json_rejects_lone_surrogates() -> None:
    """A string that is not encodable as UTF-8 is INVALID_ENCODING."""
    with pytest.raises(PayloadError) as caught:
        dump_json({"name": "\ud800"})
    assert caught.value.reason is Reason.INVALID_ENCODING


@pytest.mark.parametrize("value", [{"x": object()}, {"x": {1, 2}}])
def test_dump_json_rejects_values_json_cannot_hold(value: Any) -> None:
    """A value without a JSON form is MAPPING_FAILED."""
    with pytest.raises(PayloadError) as caught:
        dump_json(value)
    assert caught.value.reason is Reason.MAPPING_FAILED


def test_dump_json_rejects_cycles() -> None:
    """A value that contains itself is refused without looping."""
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(PayloadError) as caught:
        dump_json(cycle)
    assert caught.value.reason is Reason.MAPPING_FAILED


@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(st.text(max_size=5), inner, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_dump_then_parse_round_trips(value: Any) -> None:
    """What dump_json writes, parse_json reads back unchanged (strings with lone
    surrogates and integers past 30 digits are refused on the way)."""
    try:
        assert parse_json(dump_json(value), max_depth=64) == value
    except PayloadError as error:
        reason: Reason | None = error.reason
    else:
        reason = None
    assert reason in {None, Reason.INVALID_ENCODING, Reason.INVALID_NUMBER}
