"""``mediator admin create-key``: shown once, stored as a hash, audited."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gateway.admin.auth import API_KEY_PREFIX, Role, key_hash, read_keys
from gateway.audit import AuditLog
from gateway.cli import main

CONFIG = Path(__file__).resolve().parents[3] / "config"

Invoke = Callable[..., Result]


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    config = tmp_path / "config"
    config.mkdir()
    shutil.copy(CONFIG / "node.yaml", config / "node.yaml")
    return config


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def invoke(config_dir: Path, state_dir: Path) -> Invoke:
    def run(*args: str) -> Result:
        return CliRunner().invoke(
            main,
            [
                "--config",
                str(config_dir),
                "--state-dir",
                str(state_dir),
                "admin",
                *args,
            ],
        )

    return run


def test_the_key_alone_goes_to_standard_output(invoke: Invoke) -> None:
    """So that it can be piped into a secret store; the notes go to stderr."""
    result = invoke("create-key", "--role", "ops")

    assert result.exit_code == 0, result.output
    [key] = result.stdout.splitlines()
    assert key.startswith(API_KEY_PREFIX)
    assert "(role ops)" in result.stderr
    assert "not shown again" in result.stderr
    assert key not in result.stderr


@pytest.mark.parametrize("role", ["ops", "security_officer", "integrator"])
def test_only_the_keys_hash_is_stored_with_its_role(
    invoke: Invoke, state_dir: Path, role: str
) -> None:
    result = invoke("create-key", "--role", role)

    key = result.stdout.strip()
    [stored] = read_keys(state_dir / "admin_keys.json")
    assert (stored.role, stored.sha256) == (Role(role), key_hash(key))
    assert stored.id in result.stderr
    assert key not in (state_dir / "admin_keys.json").read_text()


def test_creating_a_key_is_audited_without_the_key(
    invoke: Invoke, state_dir: Path
) -> None:
    result = invoke("create-key", "--role", "security_officer")

    [stored] = read_keys(state_dir / "admin_keys.json")
    audit = AuditLog.in_state_dir(state_dir)
    [entry] = audit.entries()
    assert (entry.action, entry.target, entry.details) == (
        "admin_key.create",
        stored.id,
        {"role": "security_officer"},
    )
    assert entry.actor.startswith("os:")
    assert result.stdout.strip() not in audit.path.read_text()


def test_each_key_is_new_and_the_earlier_ones_stay(
    invoke: Invoke, state_dir: Path
) -> None:
    first = invoke("create-key", "--role", "ops").stdout.strip()
    second = invoke("create-key", "--role", "ops").stdout.strip()

    stored = read_keys(state_dir / "admin_keys.json")
    assert first != second
    assert [k.sha256 for k in stored] == [key_hash(first), key_hash(second)]


def test_the_key_file_is_the_one_node_yaml_names(
    invoke: Invoke, config_dir: Path, state_dir: Path
) -> None:
    node = config_dir / "node.yaml"
    node.write_text(
        node.read_text() + "admin:\n  api_keys_file: keys/admin.json\n",
        encoding="utf-8",
    )

    result = invoke("create-key", "--role", "integrator")

    assert result.exit_code == 0, result.output
    assert len(read_keys(state_dir / "keys" / "admin.json")) == 1
    assert not (state_dir / "admin_keys.json").exists()


@pytest.mark.parametrize("args", [["--role", "client"], ["--role", "root"], []])
def test_a_key_is_made_for_an_admin_role_only(
    invoke: Invoke, state_dir: Path, args: list[str]
) -> None:
    """The client role, an unknown role or none is a usage error."""
    result = invoke("create-key", *args)

    assert result.exit_code == 2
    assert "--role" in result.output
    assert not state_dir.exists()


def test_an_unreadable_key_file_is_one_line_and_nothing_is_audited(
    invoke: Invoke, state_dir: Path
) -> None:
    state_dir.mkdir()
    (state_dir / "admin_keys.json").write_text("{not json", encoding="utf-8")

    result = invoke("create-key", "--role", "ops")

    assert result.exit_code == 1
    assert result.stdout == ""
    assert f"Error: {state_dir / 'admin_keys.json'}: not a readable" in result.stderr
    assert "Traceback" not in result.output
    assert AuditLog.in_state_dir(state_dir).entries() == []


def test_a_bad_node_yaml_is_reported_with_its_file_and_line(
    invoke: Invoke, config_dir: Path, state_dir: Path
) -> None:
    node = config_dir / "node.yaml"
    text = node.read_text()
    node.write_text(text + "colour: red\n", encoding="utf-8")
    line = len(text.splitlines()) + 1

    result = invoke("create-key", "--role", "ops")

    assert result.exit_code == 1
    assert f"{node}:{line}: colour: Extra inputs are not permitted" in result.stderr
    assert not state_dir.exists()


def test_a_key_whose_creation_cannot_be_audited_is_not_stored(
    invoke: Invoke, state_dir: Path
) -> None:
    """No working key without its audit entry."""
    state_dir.mkdir()
    AuditLog.in_state_dir(state_dir).path.mkdir()  # a folder where the log should be

    result = invoke("create-key", "--role", "ops")

    assert result.exit_code == 1
    assert result.stdout == ""
    assert "the audit log cannot be opened" in result.stderr
    assert read_keys(state_dir / "admin_keys.json") == []
