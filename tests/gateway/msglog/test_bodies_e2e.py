"""Encrypted bodies end to end: a node whose students service logs them encrypted."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

import tests.gateway.conftest as gateway_conftest
from gateway.demo.setup import DemoDeployment
from gateway.msglog.bodies import BodyKeyError
from gateway.msglog.checkpoint import load_jwks
from gateway.msglog.evidence import export_evidence, verify_evidence
from gateway.msglog.sqlite import SqliteLogStore
from gateway.msglog.verify import verify_log
from tests.gateway.conftest import KANYASHREE, Harness
from tests.gateway.test_exchange import _girl, _grant, _verify, _verify_body

pytestmark = pytest.mark.anyio


def _encrypting(
    prepare: Callable[..., DemoDeployment], officer: X25519PrivateKey
) -> Callable[..., DemoDeployment]:
    """``prepare``, then the students service logs encrypted for ``officer``."""

    def wrapped(root: Path, **kwargs: Any) -> DemoDeployment:
        demo = prepare(root, **kwargs)
        directory = demo.config_dir / "directory.yaml"
        text = directory.read_text()
        marker = "          - code: students\n"
        directory.write_text(
            text.replace(marker, marker + "            body_log: encrypted\n", 1)
        )
        officers = demo.state_dir / "officers"
        officers.mkdir()
        (officers / "security.pem").write_bytes(
            officer.public_key().public_bytes(
                serialization.Encoding.PEM,
                serialization.PublicFormat.SubjectPublicKeyInfo,
            )
        )
        return demo

    return wrapped


@pytest.fixture
def officer(monkeypatch: pytest.MonkeyPatch) -> X25519PrivateKey:
    """The security officer's key; the harness deployment encrypts for it."""
    key = X25519PrivateKey.generate()
    monkeypatch.setattr(
        gateway_conftest, "prepare", _encrypting(gateway_conftest.prepare, key)
    )
    return key


async def _exchange(harness: Harness) -> tuple[dict[str, Any], bytes]:
    student = _girl(harness)
    await _grant(harness, student["student_id"])
    answer = await _verify(harness.client(KANYASHREE), _verify_body(student))
    assert answer.status == 200
    await harness.node.log.checkpoint()
    return student, answer.body


async def _export(harness: Harness, out: Path, key: X25519PrivateKey | None) -> None:
    (record,) = await harness.exchanges()
    store = SqliteLogStore(harness.demo.state_dir / "messagelog.db")
    await store.open()
    try:
        await export_evidence(
            store,
            record["message_id"],
            harness.node.keyring.jwks(),
            out,
            officer_key=key,
        )
    finally:
        await store.close()


async def test_the_node_never_writes_a_body_in_clear(
    officer: X25519PrivateKey, harness: Harness
) -> None:
    student, response = await _exchange(harness)
    await harness.node.stop()

    (record,) = await harness.exchanges()
    assert record["body_log"] == "encrypted"
    assert len(record["bodies_sha256"]) == 64
    files = harness.demo.state_dir.glob("messagelog.db*")
    written = b"".join(path.read_bytes() for path in files)
    assert student["student_id"].encode() not in written
    assert response not in written


async def test_export_with_the_officer_key_returns_the_exact_bodies(
    officer: X25519PrivateKey, harness: Harness, tmp_path: Path
) -> None:
    student, response = await _exchange(harness)
    out = tmp_path / "bundle.zip"

    await _export(harness, out, officer)

    # The request body is logged with the request record, before forwarding;
    # the response body with the response record.
    logged, answered = await harness.records()
    assert (logged["direction"], answered["direction"]) == ("request", "response")
    with zipfile.ZipFile(out) as bundle:
        request = bundle.read(f"bodies/{logged['seq']}.request.bin")
        assert f"bodies/{logged['seq']}.response.bin" not in bundle.namelist()
        assert bundle.read(f"bodies/{answered['seq']}.response.bin") == response
        assert f"bodies/{answered['seq']}.request.bin" not in bundle.namelist()
    assert orjson.loads(request) == _verify_body(student)
    assert verify_evidence(out).ok


async def test_export_with_the_wrong_key_fails(
    officer: X25519PrivateKey, harness: Harness, tmp_path: Path
) -> None:
    await _exchange(harness)

    with pytest.raises(BodyKeyError):
        await _export(harness, tmp_path / "bundle.zip", X25519PrivateKey.generate())


async def test_a_changed_ciphertext_shows_in_the_bundle(
    officer: X25519PrivateKey, harness: Harness, tmp_path: Path
) -> None:
    await _exchange(harness)
    out, forged = tmp_path / "bundle.zip", tmp_path / "forged.zip"
    await _export(harness, out, None)

    with zipfile.ZipFile(out) as source, zipfile.ZipFile(forged, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename.startswith("bodies/"):
                data = data.replace(b'"ciphertext":"', b'"ciphertext":"AAAA', 1)
            target.writestr(item, data)

    report = verify_evidence(forged)
    assert not report.ok
    assert "do not match the digest" in report.problems[0]


async def test_the_log_with_bodies_still_verifies(
    officer: X25519PrivateKey, harness: Harness
) -> None:
    await _exchange(harness)
    store = SqliteLogStore(harness.demo.state_dir / "messagelog.db")
    await store.open()
    try:
        report = await verify_log(store, load_jwks(harness.node.keyring.jwks()))
    finally:
        await store.close()
    assert report.ok
