"""Values that may go into a log line or a message-log record.

A value from a request (a path, a header, a claim) is escaped before it is
logged, so that it can neither forge a line nor drive a terminal (CVE-2020-7694):
control characters become ``\\uXXXX``, and so do the characters that split lines
or reorder text in viewers (U+2028, U+2029, the bidirectional controls of
CVE-2021-42574). A backslash is doubled, so that an escape in the output is never
ambiguous. Long values are cut with a marker.

Personal numbers never reach a log: :func:`redact_numbers` masks Aadhaar-like
numbers (also grouped with spaces or hyphens, and in any script's digits),
account-like runs of nine or more digits and student ids (``WB`` and twelve
digits, or ``WB-2019-000123``). A digit run inside a token of ASCII letters and
digits (a request id, a hash) is kept.
"""

from __future__ import annotations

import re
from typing import Final

TRUNCATED: Final = "...[truncated]"
REDACTED: Final = "[redacted]"


def _escape_table() -> dict[int, str]:
    controls = [*range(0x20), *range(0x7F, 0xA0)]
    layout = [0x200E, 0x200F, *range(0x2028, 0x202F), *range(0x2066, 0x206A), 0xFEFF]
    table = {code: f"\\u{code:04x}" for code in (*controls, *layout)}
    table[ord("\\")] = "\\\\"
    return table


_ESCAPES: Final = _escape_table()
_PRINTABLE: Final = re.compile(rb"[\x21-\x7e]*")
_PATH_BYTES: Final = tuple(
    chr(byte) if 0x21 <= byte <= 0x7E else f"%{byte:02X}" for byte in range(256)
)

# Digits of any script (``\d`` is Unicode here on purpose: Bengali digits count).
# A run that touches an ASCII letter is part of a token (a request id, a hash), not
# a number on its own, and is kept; so are the groups of a UUID that happen to be
# all digits (a message id, not a personal number).
_PERSONAL_NUMBER: Final = re.compile(
    r"""
    (?<![A-Za-z\d])[Ww][Bb]-?\d{4}-?\d{6,8}(?![A-Za-z\d])    # student id
    | (?<![A-Za-z\d])(?<![0-9a-fA-F]{8}-)                   # grouped, not the
      \d{4}[ \u00a0-]\d{4}[ \u00a0-]\d{4}(?![A-Za-z\d])       # middle of a UUID
    | (?<![A-Za-z\d])(?<![0-9a-fA-F]{4}-)\d{9,}(?![A-Za-z\d])  # Aadhaar, accounts
    """,
    re.VERBOSE,
)


def escape(value: str, limit: int = 256) -> str:
    """``value`` with control and layout characters escaped, cut after ``limit``.

    ``limit`` counts characters of ``value``; a cut value ends with
    :data:`TRUNCATED`. Raises nothing.
    """
    if len(value) <= limit:
        if value.isascii() and value.isprintable() and "\\" not in value:
            return value  # nothing the table would change
        return value.translate(_ESCAPES)
    return value[:limit].translate(_ESCAPES) + TRUNCATED


def escape_path(raw_path: bytes, limit: int = 512) -> str:
    """A raw request path as received, with every byte outside printable ASCII
    written ``%XX``; cut after ``limit`` bytes with :data:`TRUNCATED`. Raises nothing.
    """
    cut = raw_path[:limit]
    if _PRINTABLE.fullmatch(cut):
        text = cut.decode("ascii")
    else:
        text = "".join(_PATH_BYTES[byte] for byte in cut)
    return text + TRUNCATED if len(raw_path) > limit else text


def log_path(raw_path: bytes, limit: int = 512) -> str:
    """A raw request target for a record: :func:`escape_path`, then
    :func:`redact_numbers`, so that a student id or Aadhaar-like number in a path
    (``/applicants/WB201900001236/enrolment``) is never stored. Raises nothing.
    """
    return redact_numbers(escape_path(raw_path, limit))


def redact_numbers(text: str) -> str:
    """``text`` with student ids, Aadhaar-like and account-like numbers replaced
    by :data:`REDACTED`. Raises nothing.
    """
    return _PERSONAL_NUMBER.sub(REDACTED, text)


def contains_personal_number(text: str) -> bool:
    """Whether ``text`` holds a number :func:`redact_numbers` would mask."""
    return _PERSONAL_NUMBER.search(text) is not None
