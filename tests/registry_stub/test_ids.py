"""Student ids, UDISE codes and Aadhaar-like numbers."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from registry_stub.ids import (
    is_valid_student_id,
    is_valid_udise,
    make_aadhaar,
    make_student_id,
    mask_aadhaar,
    mask_account,
    normalise_aadhaar,
)

SAMPLE_IDS = [
    make_student_id(2019, 123),
    make_student_id(2013, 4_567_890),
    make_student_id(2026, 9_999_999),
    make_student_id(2021, 1),
    make_student_id(2008, 3_141_592),
]


def _single_digit_errors(student_id: str) -> list[str]:
    digits = student_id[2:]
    return [
        f"WB{digits[:i]}{wrong}{digits[i + 1 :]}"
        for i, right in enumerate(digits)
        for wrong in "0123456789"
        if wrong != right
    ]


def _adjacent_transpositions(student_id: str) -> list[str]:
    digits = student_id[2:]
    return [
        f"WB{digits[:i]}{digits[i + 1]}{digits[i]}{digits[i + 2 :]}"
        for i in range(len(digits) - 1)
        if digits[i] != digits[i + 1]
    ]


@pytest.mark.parametrize("student_id", SAMPLE_IDS)
def test_sample_ids_are_valid(student_id: str) -> None:
    assert is_valid_student_id(student_id)


@pytest.mark.parametrize("student_id", SAMPLE_IDS)
@pytest.mark.parametrize("corrupt", [_single_digit_errors, _adjacent_transpositions])
def test_check_digit_catches_every_error(
    student_id: str, corrupt: Callable[[str], list[str]]
) -> None:
    variants = corrupt(student_id)
    assert variants
    assert [v for v in variants if is_valid_student_id(v)] == []


@pytest.mark.parametrize(
    "text",
    ["", "WB20190000123", "WB2019000012360", "wb201900001236", "XX201900001236",
     "WB\uff12\uff1019000012\uff136", " WB201900001236", "WB201900001236\n"],
)  # fmt: skip
def test_malformed_student_ids_are_invalid(text: str) -> None:
    assert not is_valid_student_id(text)


@pytest.mark.parametrize(
    ("year", "serial"), [(999, 1), (10_000, 1), (2019, 0), (2019, 10_000_000)]
)
def test_make_student_id_refuses_out_of_range_parts(year: int, serial: int) -> None:
    with pytest.raises(ValueError, match="must"):
        make_student_id(year, serial)


@pytest.mark.parametrize(
    ("code", "valid"),
    [("19110900503", True), ("20110900503", False), ("1911090050", False),
     ("191109005031", False), ("19a10900503", False), ("\uff119110900503", False)],
)  # fmt: skip
def test_udise_codes(code: str, valid: bool) -> None:
    assert is_valid_udise(code) is valid


def test_made_aadhaar_numbers_are_verhoeff_valid() -> None:
    number = make_aadhaar("99991234567")
    assert len(number) == 12
    assert normalise_aadhaar(number) == number


@pytest.mark.parametrize(
    "text", ["99991234567", "0999123456789", "099912345678", "9999 1234 567X"]
)
def test_normalise_aadhaar_refuses_malformed_numbers(text: str) -> None:
    assert normalise_aadhaar(text) is None


def test_normalise_aadhaar_refuses_a_wrong_check_digit() -> None:
    number = make_aadhaar("99991234567")
    wrong = number[:-1] + str((int(number[-1]) + 1) % 10)
    assert normalise_aadhaar(wrong) is None


def test_normalise_aadhaar_accepts_grouped_digits() -> None:
    number = make_aadhaar("99991234567")
    grouped = f"{number[:4]} {number[4:8]} {number[8:]}"
    assert normalise_aadhaar(grouped) == number


@pytest.mark.parametrize(
    ("mask", "number", "shown"),
    [(mask_aadhaar, "999912345678", "XXXX XXXX 5678"),
     (mask_account, "123456789", "XXXXXXXX6789"),
     (mask_account, "123456789012345678", "XXXXXXXX5678")],
)  # fmt: skip
def test_masks_show_only_the_last_four_digits(
    mask: Callable[[str], str], number: str, shown: str
) -> None:
    assert mask(number) == shown
