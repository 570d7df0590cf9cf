"""Fixtures of the policy tests: the deployment's own policy files and student ids."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from stdnum import verhoeff

from policies import AccessPolicy, PurposeSet
from policies.purposes import Purpose

CONFIG = Path(__file__).resolve().parents[2] / "config"


def student_id(serial: int, year: int = 2019) -> str:
    """A valid student id: WB, year, 7-digit serial and the Verhoeff check digit."""
    digits = f"{year:04d}{serial:07d}"
    return f"WB{digits}{verhoeff.calc_check_digit(digits)}"


@pytest.fixture(scope="session")
def purposes() -> PurposeSet:
    return PurposeSet.load(CONFIG / "purposes.yaml")


@pytest.fixture
def kanyashree(purposes: PurposeSet) -> Purpose:
    """The purpose the consent tests grant for: it rests on consent."""
    purpose = purposes.get("kanyashree-eligibility")
    assert purpose is not None
    return purpose


@pytest.fixture(scope="session")
def access(purposes: PurposeSet) -> AccessPolicy:
    return AccessPolicy.load(CONFIG / "access.yaml", purposes.ids())


@pytest.fixture
def write_yaml(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write a dedented YAML text to ``tmp_path / name`` and return the path."""

    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write
