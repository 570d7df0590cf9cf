"""Identifiers of the registry: student ids, UDISE codes and Aadhaar-like numbers.

A student id is ``WB`` + admission year (4 digits) + serial (7 digits) + one Verhoeff
check digit over those 11 digits; the Verhoeff scheme catches every single-digit error
and every transposition of adjacent digits. A UDISE code is 11 ASCII digits: state
``19`` + district (2) + block (2) + village (2) + school (3). Aadhaar-like numbers of
the synthetic data come from the made-up range starting ``9999`` and carry a valid
Verhoeff check digit, as real Aadhaar numbers do.
"""

from __future__ import annotations

import re
from typing import Final

from stdnum import verhoeff

STATE_CODE: Final = "19"
SERIAL_MAX: Final = 9_999_999
TEST_AADHAAR_PREFIX: Final = "9999"

_STUDENT_ID = re.compile(r"WB(\d{12})", re.ASCII)
_UDISE = re.compile(r"19\d{9}", re.ASCII)
_AADHAAR = re.compile(r"[2-9]\d{11}", re.ASCII)


def check_digit(digits: str) -> str:
    """Return the Verhoeff check digit of a string of ASCII digits."""
    return str(verhoeff.calc_check_digit(digits))


def make_student_id(admission_year: int, serial: int) -> str:
    """Build the student id of an admission year and serial.

    Raises ValueError if the year is not four digits or the serial is out of range.
    """
    if not 1000 <= admission_year <= 9999:
        raise ValueError("admission year must have four digits")
    if not 1 <= serial <= SERIAL_MAX:
        raise ValueError("serial must be between 1 and 9999999")
    body = f"{admission_year:04d}{serial:07d}"
    return f"WB{body}{check_digit(body)}"


def is_valid_student_id(text: str) -> bool:
    """Tell whether ``text`` is a well-formed student id with a valid check digit."""
    match = _STUDENT_ID.fullmatch(text)
    if match is None:
        return False
    return bool(verhoeff.is_valid(match.group(1)))


def is_valid_udise(text: str) -> bool:
    """Tell whether ``text`` is an 11-digit West Bengal UDISE code."""
    return _UDISE.fullmatch(text) is not None


def make_aadhaar(eleven_digits: str) -> str:
    """Append the Verhoeff check digit to 11 digits, giving a 12-digit number."""
    return eleven_digits + check_digit(eleven_digits)


def normalise_aadhaar(text: str) -> str | None:
    """Return the 12 digits of an Aadhaar-like number, or None if it is not valid.

    Spaces between groups are allowed; the check digit must be right.
    """
    digits = text.replace(" ", "")
    if _AADHAAR.fullmatch(digits) is None or not verhoeff.is_valid(digits):
        return None
    return digits


def mask_aadhaar(number: str) -> str:
    """Show only the last four digits: ``XXXX XXXX 1234``."""
    return f"XXXX XXXX {number[-4:]}"


def mask_account(number: str) -> str:
    """Show only the last four digits of a bank account number."""
    return f"XXXXXXXX{number[-4:]}"
