"""Loading a deployment's policies and checking its policy files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gateway.errors import ConfigError
from policies import check_config, load_policies
from tests.policies.conftest import CONFIG


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    for name in ("access.yaml", "purposes.yaml"):
        shutil.copy(CONFIG / name, tmp_path / name)
    return tmp_path


def test_deployment_policies_load_and_check_clean() -> None:
    policies = load_policies(CONFIG)

    assert {rule.id for rule in policies.access.rules()} >= {"kanyashree-verify"}
    assert check_config(CONFIG) == []


def test_every_access_purpose_is_a_configured_purpose() -> None:
    policies = load_policies(CONFIG)

    named = {p for rule in policies.access.rules() for p in rule.purposes}
    assert named <= policies.purposes.ids()


def test_check_config_reports_both_files(config_dir: Path) -> None:
    purposes = config_dir / "purposes.yaml"
    purposes.write_text(purposes.read_text().replace("version: 1", "version: -1", 1))
    access = config_dir / "access.yaml"
    access.write_text(access.read_text().replace("method: POST", "method: BREW", 1))

    errors = check_config(config_dir)

    assert [Path(e.file).name for e in errors] == ["purposes.yaml", "access.yaml"]
    assert all(e.line is not None for e in errors)


def test_access_naming_unknown_purpose_fails_to_load(config_dir: Path) -> None:
    access = config_dir / "access.yaml"
    access.write_text(access.read_text().replace("[kanyashree-eligibility]", "[other]"))

    with pytest.raises(ConfigError, match="unknown purpose 'other'"):
        load_policies(config_dir)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_policies(tmp_path)
