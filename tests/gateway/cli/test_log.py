"""``mediator log``: archive, archive-verify, and export with the officer's key."""

from __future__ import annotations

import zipfile
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gateway.cli import main
from gateway.msglog import public_jwk
from tests.gateway.cli.conftest import run_log as _run
from tests.gateway.msglog.conftest import DAY, DAY_ZERO

NODE_YAML = """\
node_id: WB/GOV/SED/mediator-1
public_url: http://127.0.0.1:8700
allowed_hosts: [127.0.0.1:8700]
auth:
  audience: https://mediator.shiksha.example
log:
  retention_days: 30
  archive_period: day
"""


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """node.yaml with a 30-day retention and archives of one day."""
    config = tmp_path / "config"
    config.mkdir()
    (config / "node.yaml").write_text(NODE_YAML)
    return config


def _pem(key: X25519PrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


# -- export --officer-key ----------------------------------------------------------


def test_export_with_the_officer_key_writes_the_exact_bodies(
    state_dir: Path, tmp_path: Path, officer: X25519PrivateKey
) -> None:
    key = _pem(officer, tmp_path / "officer.pem")
    out = tmp_path / "bundle.zip"

    result = _run(
        state_dir,
        "export",
        "--message-id",
        "msg-3",
        "--out",
        str(out),
        "--officer-key",
        str(key),
    )
    checked = CliRunner().invoke(main, ["log", "evidence-verify", str(out)])

    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(out) as bundle:
        request = bundle.read("bodies/3.request.bin")
        response = bundle.read("bodies/3.response.bin")
    assert (request, response) == (b"request 3", b"response 3")
    assert checked.exit_code == 0, checked.output


def test_export_with_another_officer_key_fails_and_writes_nothing(
    state_dir: Path, tmp_path: Path
) -> None:
    key = _pem(X25519PrivateKey.generate(), tmp_path / "other.pem")
    out = tmp_path / "bundle.zip"

    result = _run(
        state_dir,
        "export",
        "--message-id",
        "msg-3",
        "--out",
        str(out),
        "--officer-key",
        str(key),
    )

    assert result.exit_code == 1
    assert "cannot decrypt" in result.output
    assert not out.exists()


def test_export_refuses_an_officer_key_of_another_type(
    state_dir: Path, tmp_path: Path
) -> None:
    key = tmp_path / "ed25519.pem"
    key.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )

    result = _run(
        state_dir,
        "export",
        "--message-id",
        "msg-3",
        "--out",
        str(tmp_path / "b.zip"),
        "--officer-key",
        str(key),
    )

    assert result.exit_code == 1
    assert "must be X25519" in result.output


# -- archive, archive-verify ----------------------------------------------------------


def test_archive_by_retention_then_verify_reports_the_archived_prefix(
    state_dir: Path, config_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "archives"
    out.mkdir()

    archived = _run(state_dir, "archive", "--out", str(out), config=config_dir)
    verified = _run(state_dir, "verify", config=config_dir)

    assert archived.exit_code == 0, archived.output
    assert "archived 2023-11-16: seq 10-14 (5 records)" in archived.output
    assert "stopped: no live records" in archived.output
    assert len(list(out.glob("*.zip"))) == 3
    assert verified.exit_code == 0, verified.output
    assert "archived:    15 records, verified by hash only" in verified.output


def test_archive_before_a_date_takes_only_earlier_periods(
    state_dir: Path, config_dir: Path, tmp_path: Path
) -> None:
    before = str(DAY_ZERO + DAY)

    result = _run(
        state_dir,
        "archive",
        "--out",
        str(tmp_path),
        "--before",
        before,
        config=config_dir,
    )

    assert result.exit_code == 0, result.output
    assert "archived 2023-11-14: seq 0-4" in result.output
    assert "stopped: period 2023-11-15 ends after the cutoff" in result.output


def test_archive_without_retention_or_a_date_refuses(
    state_dir: Path, tmp_path: Path
) -> None:
    result = _run(state_dir, "archive", "--out", str(tmp_path))

    assert result.exit_code == 1
    assert "retention is off" in result.output


def test_archive_verify_exit_status_is_the_verdict(
    state_dir: Path, config_dir: Path, tmp_path: Path
) -> None:
    _run(state_dir, "archive", "--out", str(tmp_path), config=config_dir)
    (first, *_) = sorted(tmp_path.glob("messagelog-*.zip"))
    other = {"keys": [public_jwk("node-a", Ed25519PrivateKey.generate().public_key())]}
    (tmp_path / "other.json").write_bytes(orjson.dumps(other))
    runner = CliRunner()

    valid = runner.invoke(main, ["log", "archive-verify", str(first)])
    untrusted = runner.invoke(
        main,
        [
            "log",
            "archive-verify",
            str(first),
            "--trusted-jwks",
            str(tmp_path / "other.json"),
        ],
    )

    assert valid.exit_code == 0, valid.output
    assert "records:     seq 0-4" in valid.output
    assert untrusted.exit_code == 1
    assert "INVALID: bad checkpoint signature" in untrusted.output


def test_export_of_an_archived_message_names_its_file(
    state_dir: Path, config_dir: Path, tmp_path: Path
) -> None:
    _run(state_dir, "archive", "--out", str(tmp_path), config=config_dir)
    out = tmp_path / "bundle.zip"

    result = _run(state_dir, "export", "--message-id", "msg-3", "--out", str(out))

    assert result.exit_code == 1
    assert "archived: seq 3 in messagelog-2023-11-14-0.zip" in result.output
    assert not out.exists()
