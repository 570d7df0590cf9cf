"""``mediator clients keygen``: private key out, public key into the JWKS file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization

from gateway.cli import main
from gateway.directory import Directory
from gateway.identifiers import ClientId

CONFIG = Path(__file__).resolve().parents[3] / "config"
KANYASHREE = "WB/GOV/WCD/kanyashree"


def _keygen(config: Path, out: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        main,
        [
            "--config",
            str(config),
            "clients",
            "keygen",
            KANYASHREE,
            "--out",
            str(out),
            *extra,
        ],
    )
    return result.exit_code, result.output


def test_new_key_is_registered_and_its_private_half_written(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config)
    out = tmp_path / "kanyashree.pem"

    code, output = _keygen(config, out, "--kid", "kanyashree-2027-1")

    assert code == 0, output
    assert out.stat().st_mode & 0o777 == 0o600
    private = serialization.load_pem_private_key(out.read_bytes(), password=None)
    directory = Directory.load(config / "directory.yaml")
    subsystem = directory.subsystem(ClientId.parse(KANYASHREE))
    assert subsystem is not None
    registered = subsystem.keys["kanyashree-2027-1"]
    assert registered.key.public_bytes_raw() == private.public_key().public_bytes_raw()  # type: ignore[union-attr]
    jwks = json.loads((config / "clients/kanyashree.jwks.json").read_text())
    assert all("d" not in key for key in jwks["keys"])


def test_an_existing_private_key_file_is_never_overwritten(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config)
    out = tmp_path / "existing.pem"
    out.write_text("keep me")

    code, output = _keygen(config, out)

    assert code != 0
    assert "not overwriting" in output
    assert out.read_text() == "keep me"


def test_a_repeated_key_id_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config)

    code, output = _keygen(config, tmp_path / "a.pem", "--kid", "kanyashree-2026-1")

    assert code != 0
    assert "already in" in output
