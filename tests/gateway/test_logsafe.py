"""Tests for values that may go into log lines and message-log records."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway import logsafe
from gateway.logsafe import (
    REDACTED,
    TRUNCATED,
    contains_personal_number,
    escape,
    escape_path,
    redact_numbers,
)

C13_PATH = (
    b"/r1/IN-EDU/GOV/WBSED/student-registry/students/by-udise/"
    b"%1b%5b2J%1b%5b1%3b1H%0a2026-12-04T10:00:01Z%20decision=forwarded"
    b"%20client=exam-board%20status=200"
)


@pytest.mark.parametrize(
    ("value", "logged"),
    [
        ("mdm-sync/2.1", "mdm-sync/2.1"),
        ("শোভন রায়", "শোভন রায়"),
        # C13: ESC and BEL in a User-Agent, an OSC title sequence.
        ("mdm-sync/2.1 \x1b]0;owned\x07", "mdm-sync/2.1 \\u001b]0;owned\\u0007"),
        # C13: a forged JSON record after a newline, U+2028 and NEL (U+0085).
        (
            'ok\n{"decision":"forwarded"}\u2028\u0085end',
            'ok\\u000a{"decision":"forwarded"}\\u2028\\u0085end',
        ),
        ("a\rb\tc\x00d\x7fe", "a\\u000db\\u0009c\\u0000d\\u007fe"),
        ("\u2029", "\\u2029"),
        ("\u202eevil", "\\u202eevil"),
        ("\ufeffx", "\\ufeffx"),
        ("C:\\temp", "C:\\\\temp"),
        ("\\u001b", "\\\\u001b"),
    ],
)
def test_escape_writes_control_and_layout_characters_as_escapes(
    value: str, logged: str
) -> None:
    """Control, line-separator and bidi characters become \\uXXXX."""
    assert escape(value) == logged


def test_escape_cuts_long_values_with_a_marker() -> None:
    """A value over the limit keeps its first characters and ends with the marker."""
    assert escape("x" * 300, limit=10) == "x" * 10 + TRUNCATED
    assert escape("x" * 10, limit=10) == "x" * 10


def test_escape_cuts_before_escaping() -> None:
    """The limit counts characters of the value, so escapes are never split."""
    assert escape("ab\x1bcd", limit=3) == "ab\\u001b" + TRUNCATED


@given(st.text(max_size=100))
def test_escaped_values_hold_no_control_characters(value: str) -> None:
    """Whatever the value, the logged form has no control or separator characters."""
    logged = escape(value)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in logged)
    assert "\u2028" not in logged
    assert "\u2029" not in logged


@pytest.mark.parametrize(
    ("raw_path", "logged"),
    [
        (b"/r1/a/b", "/r1/a/b"),
        # C13: the path stays percent-encoded as received.
        (C13_PATH, C13_PATH.decode()),
        (b"/r1/a\x1b[2J\nb", "/r1/a%1B[2J%0Ab"),
        (b"/r1/a b\x00\x7f\xe0\xa6", "/r1/a%20b%00%7F%E0%A6"),
    ],
)
def test_escape_path_percent_encodes_unprintable_bytes(
    raw_path: bytes, logged: str
) -> None:
    """Bytes outside printable ASCII are written %XX; the rest is kept."""
    assert escape_path(raw_path) == logged


def test_escape_path_cuts_long_paths_with_a_marker() -> None:
    """A path over the limit is cut and marked."""
    assert escape_path(b"/" + b"a" * 600, limit=4) == "/aaa" + TRUNCATED


@given(st.binary(max_size=100))
def test_escaped_paths_are_printable_ascii(raw_path: bytes) -> None:
    """Any raw path logs as printable ASCII."""
    assert all(0x21 <= ord(c) <= 0x7E for c in escape_path(raw_path))


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("aadhaar 999901234563 seen", f"aadhaar {REDACTED} seen"),
        ("9999 0123 4563", REDACTED),
        ("9999-0123-4563", REDACTED),
        ("9999\u00a00123\u00a04563", REDACTED),
        ("৯৯৯৯৭৬৫৪৩২১১", REDACTED),
        ("৯৯৯৯ ০১২৩ ৪৫৬৩", REDACTED),
        ('{"aadhaar":999901234563}', f'{{"aadhaar":{REDACTED}}}'),
        ("account 123456789", f"account {REDACTED}"),
        ("account 123456789012345678", f"account {REDACTED}"),
        ("ifsc SBIN0001234 acct 00012345678901", f"ifsc SBIN0001234 acct {REDACTED}"),
        ("acct_00012345678901", f"acct_{REDACTED}"),
        ("আধার৯৯৯৯০১২৩৪৫৬৩", f"আধার{REDACTED}"),
        ("student WB201900001235", f"student {REDACTED}"),
        ("student_id=WB-2019-000123;", f"student_id={REDACTED};"),
        ("wb201900001235", REDACTED),
        ("=" + "1" * 30 + ";", f"={REDACTED};"),
    ],
)
def test_redact_numbers_masks_personal_numbers(text: str, redacted: str) -> None:
    """Aadhaar-like, account-like numbers and student ids are masked."""
    assert redact_numbers(text) == redacted
    assert contains_personal_number(text)
    assert not contains_personal_number(redacted)


@pytest.mark.parametrize(
    "text",
    [
        "status=200 duration_ms=12.5",
        "2026-12-04T10:00:01Z",
        "class V, 12345678 students",
        "IN-EDU/GOV/WBSED/student-registry/students",
        "request_id=7b0c1d2e-aaaa-4bbb-8ccc-0123456789ab",
        "9999 0123",
        "WBT1234567",
        "sha256=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "hash 123456789abcdef0123456789",
    ],
)
def test_redact_numbers_keeps_other_text(text: str) -> None:
    """Short numbers, timestamps and identifiers are not masked."""
    assert redact_numbers(text) == text
    assert not contains_personal_number(text)


@pytest.mark.parametrize(
    "message_id",
    [
        "a84135df-4504-4759-9105-7da7345cb662",
        "12345678-1234-5678-9012-123456789012",
    ],
)
def test_a_uuid_with_all_digit_groups_is_not_a_personal_number(
    message_id: str,
) -> None:
    assert not contains_personal_number(message_id)
    assert contains_personal_number("id 1234-5678-9012")


def test_escape_takes_a_shortcut_only_where_the_table_changes_nothing() -> None:
    """Each character up to U+2100, alone or in text, escapes as the table says."""
    for code in range(0x2100):
        for text in (chr(code), f"a{chr(code)}b"):
            assert escape(text) == text.translate(logsafe._ESCAPES), hex(code)
