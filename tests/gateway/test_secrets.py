"""Secrets: masked by type, read from a safe file or an environment variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.secrets import Secret, read_passphrase


def test_secret_hides_its_value() -> None:
    secret = Secret("hunter2")

    assert "hunter2" not in repr(secret)
    assert "hunter2" not in str(secret)
    assert "hunter2" not in f"{secret!r} {secret}"
    assert secret.reveal() == b"hunter2"


def test_passphrase_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_PASSPHRASE", "correct horse")

    assert read_passphrase("TEST_PASSPHRASE", None).reveal() == b"correct horse"


def test_missing_variable_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_PASSPHRASE", raising=False)

    with pytest.raises(ConfigError, match=r"\$TEST_PASSPHRASE"):
        read_passphrase("TEST_PASSPHRASE", None)


def test_passphrase_file_is_read_without_newline(tmp_path: Path) -> None:
    file = tmp_path / "pass"
    file.write_bytes(b"correct horse\n")
    file.chmod(0o600)

    assert read_passphrase("UNUSED", file).reveal() == b"correct horse"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_group_or_world_readable_file_is_refused(tmp_path: Path, mode: int) -> None:
    file = tmp_path / "pass"
    file.write_bytes(b"correct horse battery")
    file.chmod(mode)

    with pytest.raises(ConfigError, match="group or world") as info:
        read_passphrase("UNUSED", file)

    assert "correct horse" not in str(info.value)


@pytest.mark.parametrize("content", [b"", b"\n"])
def test_empty_file_is_refused(tmp_path: Path, content: bytes) -> None:
    file = tmp_path / "pass"
    file.write_bytes(content)
    file.chmod(0o600)

    with pytest.raises(ConfigError, match="empty"):
        read_passphrase("UNUSED", file)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        read_passphrase("UNUSED", tmp_path / "absent")
