"""Encrypted bodies in each store: kept beside the records, opened by the officer."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gateway.msglog import KeySigner, LogStore, load_jwks
from gateway.msglog.bodies import BodyKeyError
from gateway.msglog.bodylog import BodyLog, stored_label
from gateway.msglog.evidence import export_evidence, verify_evidence
from gateway.msglog.records import parse
from gateway.msglog.verify import verify_log
from tests.gateway.msglog.conftest import STUDENTS, Backend, build_dated_log

pytestmark = pytest.mark.anyio


@pytest.fixture
def officer() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


@pytest.fixture
async def store(
    backend: Backend, signer: KeySigner, officer: X25519PrivateKey
) -> AsyncIterator[LogStore]:
    """An open store of six sealed records whose bodies were logged encrypted."""
    writer = backend.store()
    bodies = BodyLog({"so-1": officer.public_key()}, {STUDENTS: None}, writer)
    await build_dated_log(writer, signer, 6, bodies=bodies)
    reader = backend.store()
    await reader.open()
    try:
        yield reader
    finally:
        await reader.close()


async def test_each_record_has_its_entries_and_no_plaintext(store: LogStore) -> None:
    stored = await store.bodies(list(range(6)))
    records = await store.get_range(0, 6)

    assert sorted(stored) == list(range(6))
    for row in records:
        digest = hashlib.sha256(stored[row.seq]).hexdigest()
        assert parse(row.canonical)["bodies_sha256"] == digest
        assert f"request {row.seq}".encode() not in stored[row.seq]


async def test_the_data_key_is_stored_once_under_its_label(store: LogStore) -> None:
    stored = await store.bodies([0])
    label = stored_label(stored[0])
    assert label is not None
    envelope = await store.body_key(label)

    await store.save_body_key(label, b"another envelope")

    assert envelope is not None
    assert await store.body_key(label) == envelope


async def test_the_officer_exports_the_exact_bodies(
    store: LogStore, officer: X25519PrivateKey, jwks: dict[str, Any], tmp_path: Path
) -> None:
    import zipfile

    out = tmp_path / "bundle.zip"

    await export_evidence(store, "msg-4", jwks, out, officer_key=officer)

    with zipfile.ZipFile(out) as bundle:
        assert bundle.read("bodies/4.request.bin") == b"request 4"
        assert bundle.read("bodies/4.response.bin") == b"response 4"
    assert verify_evidence(out).ok


async def test_another_key_opens_nothing(
    store: LogStore, jwks: dict[str, Any], tmp_path: Path
) -> None:
    with pytest.raises(BodyKeyError):
        await export_evidence(
            store,
            "msg-4",
            jwks,
            tmp_path / "bundle.zip",
            officer_key=X25519PrivateKey.generate(),
        )


async def test_a_changed_ciphertext_in_the_database_shows_in_the_bundle(
    backend: Backend, store: LogStore, jwks: dict[str, Any], tmp_path: Path
) -> None:
    (entries,) = (await store.bodies([2])).values()
    forged = entries.replace(b'"ciphertext":"', b'"ciphertext":"AAAA', 1)
    await backend.tamper(("UPDATE bodies SET entries = ? WHERE seq = 2", (forged,)))
    out = tmp_path / "bundle.zip"

    await export_evidence(store, "msg-2", jwks, out)

    report = verify_evidence(out)
    assert not report.ok
    assert "do not match the digest" in report.problems[0]


async def test_the_log_with_bodies_verifies(
    store: LogStore, jwks: dict[str, Any]
) -> None:
    report = await verify_log(store, load_jwks(jwks))

    assert report.ok, report.problem
