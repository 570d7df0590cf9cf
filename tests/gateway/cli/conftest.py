"""Fixtures of the ``mediator log`` tests: a state directory with a sealed log."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gateway.cli import main
from gateway.msglog import KeySigner, SqliteLogStore, public_jwk
from gateway.msglog.bodylog import BodyLog
from tests.gateway.msglog.conftest import STUDENTS, build_dated_log


@pytest.fixture
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def officer() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


@pytest.fixture
def state_dir(
    tmp_path: Path, signing_key: Ed25519PrivateKey, officer: X25519PrivateKey
) -> Path:
    """A state directory: 15 sealed records on days 0 to 2, bodies encrypted."""
    state = tmp_path / "state"
    (state / "keyring").mkdir(parents=True)
    jwks = {"keys": [public_jwk("node-a", signing_key.public_key())]}
    (state / "keyring" / "jwks.json").write_bytes(orjson.dumps(jwks))
    store = SqliteLogStore(state / "messagelog.db")
    bodies = BodyLog({"so-1": officer.public_key()}, {STUDENTS: None}, store)
    signer = KeySigner("node-a", signing_key)
    asyncio.run(build_dated_log(store, signer, bodies=bodies))
    return state


def run_log(state_dir: Path, *args: str, config: Path | None = None) -> Result:
    """``mediator [--config CONFIG] --state-dir STATE log ARGS``."""
    where = ["--state-dir", str(state_dir)]
    if config is not None:
        where = ["--config", str(config), *where]
    return CliRunner().invoke(main, [*where, "log", *args])
