"""Subsystem keys in directory.yaml: inline JWKs and a JWKS URL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.client import new_client_key
from gateway.directory import Directory
from gateway.errors import ConfigError
from gateway.identifiers import ClientId

PORTAL = ClientId.parse("IN/GOV/SED/mdm-portal")


def _write(tmp_path: Path, subsystem: str) -> Path:
    path = tmp_path / "directory.yaml"
    path.write_text(
        "instance: IN\nmembers:\n  - id: IN/GOV/SED\n    subsystems:\n" + subsystem
    )
    return path


@pytest.mark.anyio
async def test_inline_keys_are_registered_by_kid(tmp_path: Path) -> None:
    jwk = json.dumps(new_client_key("portal-1")[1])
    path = _write(tmp_path, f"      - code: mdm-portal\n        keys_inline: [{jwk}]\n")

    subsystem = Directory.load(path).subsystem(PORTAL)

    assert subsystem is not None
    assert (await subsystem.key("portal-1")) is not None
    assert (await subsystem.key("portal-2")) is None


def test_a_kid_given_in_the_file_and_inline_is_refused(tmp_path: Path) -> None:
    jwk = new_client_key("portal-1")[1]
    (tmp_path / "portal.jwks.json").write_text(json.dumps({"keys": [jwk]}))
    path = _write(
        tmp_path,
        "      - code: mdm-portal\n        keys: portal.jwks.json\n"
        f"        keys_inline: [{json.dumps(jwk)}]\n",
    )

    with pytest.raises(ConfigError, match="given twice"):
        Directory.load(path)


def test_a_jwks_url_makes_a_remote_key_source(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "      - code: mdm-portal\n        keys_url:\n"
        "          url: http://127.0.0.1:8901/jwks.json\n          cooldown_s: 10\n",
    )

    subsystem = Directory.load(path).subsystem(PORTAL)

    assert subsystem is not None
    assert subsystem.remote is not None
    assert subsystem.remote.url == "http://127.0.0.1:8901/jwks.json"
    assert subsystem.remote.cooldown_s == 10
