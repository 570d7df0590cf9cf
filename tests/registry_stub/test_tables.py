"""The fixed tables of the synthetic registry: names, districts and school kinds."""

from __future__ import annotations

import re
import unicodedata

import pytest

from registry_stub import tables
from registry_stub.openapi_schemas import SCHEMAS

POOLS = {
    "GENERAL_MALE": tables.GENERAL_MALE,
    "GENERAL_FEMALE": tables.GENERAL_FEMALE,
    "GENERAL_SURNAMES": tables.GENERAL_SURNAMES,
    "MUSLIM_MALE": tables.MUSLIM_MALE,
    "MUSLIM_FEMALE": tables.MUSLIM_FEMALE,
    "MUSLIM_SURNAMES": tables.MUSLIM_SURNAMES,
}


def is_bengali(text: str) -> bool:
    """Letters and marks of the Bengali block (U+0980-U+09FF) only."""
    return all(0x0980 <= ord(c) <= 0x09FF for c in text)


@pytest.mark.parametrize("pool", POOLS.values(), ids=POOLS.keys())
def test_a_name_is_a_latin_word_beside_a_bengali_one(
    pool: tuple[tables.NamePair, ...],
) -> None:
    """``name.en`` and ``name.bn`` are each in one script, one word each."""
    for en, bn in pool:
        assert re.fullmatch(r"[A-Z][a-z]+", en), en
        assert is_bengali(bn), (en, bn)
        assert unicodedata.is_normalized("NFC", bn), en


@pytest.mark.parametrize("pool", POOLS.values(), ids=POOLS.keys())
def test_a_pool_lists_each_name_once(pool: tuple[tables.NamePair, ...]) -> None:
    assert len({en for en, _ in pool}) == len(pool)
    assert len({bn for _, bn in pool}) == len(pool)


def test_the_districts_are_west_bengals_23() -> None:
    names = [name for name, _ in tables.DISTRICTS]

    assert len(names) == 23
    assert len(set(names)) == 23
    assert names[15] == "Kolkata"


@pytest.mark.parametrize(
    ("district", "blocks"), tables.DISTRICTS, ids=[d for d, _ in tables.DISTRICTS]
)
def test_a_districts_places_fit_a_two_digit_block_code(
    district: str, blocks: tuple[str, ...]
) -> None:
    """A UDISE code gives the block two digits; a place is named once."""
    assert 1 <= len(blocks) <= 99
    assert len(set(blocks)) == len(blocks)
    assert all(place.strip() == place and place for place in blocks), district


def test_every_kind_of_school_teaches_a_range_of_classes_0_to_12() -> None:
    for kind, weight in tables.SCHOOL_KINDS:
        low, high = kind.classes
        assert 0 <= low <= high <= 12, kind.suffixes
        assert weight > 0
        assert kind.suffixes


def test_the_first_two_schools_cover_every_class_for_every_child() -> None:
    """A primary and a co-educational higher secondary school: classes 0 to 12."""
    first, second = tables.PRIMARY, tables.HIGHER_SECONDARY
    covered = set(range(first.classes[0], first.classes[1] + 1))
    covered |= set(range(second.classes[0], second.classes[1] + 1))

    assert covered == set(range(13))
    assert not first.girls_only
    assert not second.girls_only


def test_the_guaranteed_kinds_are_also_drawn_later() -> None:
    kinds = [kind for kind, _ in tables.SCHOOL_KINDS]

    assert tables.PRIMARY in kinds
    assert tables.HIGHER_SECONDARY in kinds


def test_only_girls_schools_are_girls_only_and_only_public_schools_private() -> None:
    for kind, _ in tables.SCHOOL_KINDS:
        assert kind.girls_only == any("Girls'" in s for s in kind.suffixes)
        assert kind.private == any(
            s in ("Public School", "Model School") for s in kind.suffixes
        )


def test_bank_codes_make_ifsc_codes_the_registry_accepts() -> None:
    pattern = SCHEMAS["BankAccount"]["properties"]["ifsc"]["pattern"]

    assert len(set(tables.IFSC_BANKS)) == len(tables.IFSC_BANKS)
    for bank in tables.IFSC_BANKS:
        assert re.fullmatch(pattern, f"{bank}0123456"), bank


def test_secondary_subjects_are_listed_once() -> None:
    assert len(set(tables.SECONDARY_SUBJECTS)) == len(tables.SECONDARY_SUBJECTS)
    assert "All subjects" not in tables.SECONDARY_SUBJECTS
