"""The store's de-duplication key and its refusal of files that are not registries."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import ConfigError
from registry_stub.store import connect, dedup_key, normalise_name


@pytest.mark.parametrize(
    ("a", "b"),
    [("Shovan Roy", "shovan roy"), ("Shovan Roy", "  Shovan   Roy "),
     ("Shovan Roy", "Shovan\tROY"), ("Shovan Roy", "Shóvan Rōy"),
     ("Ayesha Khan", "AYESHA KHAN")],
)  # fmt: skip
def test_names_equal_after_folding(a: str, b: str) -> None:
    assert normalise_name(a) == normalise_name(b)


def test_different_names_stay_different() -> None:
    assert normalise_name("Shovan Roy") != normalise_name("Shovan Ray")


def test_dedup_key_needs_name_birth_date_and_guardian() -> None:
    key = dedup_key("Shovan Roy", "2012-03-05", "Tapas Roy")
    assert key == dedup_key("SHOVAN  ROY", "2012-03-05", "tapas roy")
    assert key != dedup_key("Shovan Roy", "2012-03-06", "Tapas Roy")
    assert key != dedup_key("Shovan Roy", "2012-03-05", "Rupa Roy")


def test_connect_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        connect(tmp_path / "missing.db")


def test_connect_refuses_a_file_that_is_not_a_registry(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"junk" * 1000)
    with pytest.raises(ConfigError, match="not a seeded registry"):
        connect(path)
