"""Evidence bundles: export from a sealed log, verify offline, and catch tampering."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.msglog import (
    EvidenceError,
    KeySigner,
    MessageLog,
    export_evidence,
    verify_evidence,
)
from gateway.msglog.checkpoint import load_jwks, public_jwk
from tests.gateway.msglog.conftest import Backend, make_record

pytestmark = pytest.mark.anyio


@pytest.fixture
async def bundle(backend: Backend, signer: KeySigner, jwks: dict[str, Any]) -> Path:
    """A bundle of message ``m-x``, logged twice (seq 3 and 6) in a log of 10."""
    log = MessageLog(backend.store(), signer=signer, checkpoint_interval_s=60)
    await log.start()
    for i in range(10):
        await log.append(make_record(i, message_id="m-x" if i in (3, 6) else None))
    await log.close()

    out = backend.db_path.parent / "bundle.zip"
    store = backend.store()
    await store.open()
    await export_evidence(store, "m-x", jwks, out)
    await store.close()
    return out


def _rewrite(bundle: Path, name: str, change: Any) -> None:
    with zipfile.ZipFile(bundle) as old:
        entries = {n: old.read(n) for n in old.namelist()}
    entries[name] = change(entries[name])
    with zipfile.ZipFile(bundle, "w") as new:
        for n, data in entries.items():
            new.writestr(n, data)


async def test_exported_bundle_verifies(bundle: Path) -> None:
    report = verify_evidence(bundle)
    assert report.ok, report.problems
    assert (report.message_id, report.records, report.tree_size) == ("m-x", [3, 6], 10)


async def test_a_bundle_is_readable_by_its_maker_only(bundle: Path) -> None:
    """It holds the exchange's records (and its bodies, when opened)."""
    assert (await anyio.Path(bundle).stat()).st_mode & 0o077 == 0


async def test_bundle_holds_records_as_stored(bundle: Path, backend: Backend) -> None:
    with zipfile.ZipFile(bundle) as zipped:
        names = set(zipped.namelist())
        record = zipped.read("records/3.json")
    assert names == {
        "manifest.json",
        "records/3.json",
        "records/6.json",
        "checkpoint.json",
        "jwks.json",
    }
    assert orjson.loads(record)["seq"] == 3


async def test_changed_record_is_hash_mismatch(bundle: Path) -> None:
    _rewrite(bundle, "records/3.json", lambda b: b.replace(b'"GET"', b'"PUT"'))
    report = verify_evidence(bundle)
    assert not report.ok
    assert report.problems == [
        "hash mismatch at seq 3: the record bytes do not match its hash"
    ]


async def test_changed_record_with_new_hash_fails_inclusion(bundle: Path) -> None:
    changed = b""

    def change_record(data: bytes) -> bytes:
        nonlocal changed
        changed = data.replace(b'"GET"', b'"PUT"')
        return changed

    def change_manifest(data: bytes) -> bytes:
        manifest = orjson.loads(data)
        manifest["records"][0]["hash"] = hashlib.sha256(changed).hexdigest()
        return orjson.dumps(manifest)

    _rewrite(bundle, "records/3.json", change_record)
    _rewrite(bundle, "manifest.json", change_manifest)
    report = verify_evidence(bundle)
    assert report.problems == [
        "inclusion proof of seq 3 does not verify against the checkpoint"
    ]


async def test_changed_checkpoint_has_bad_signature(bundle: Path) -> None:
    _rewrite(
        bundle,
        "checkpoint.json",
        lambda b: b.replace(b'"tree_size":10', b'"tree_size":11'),
    )
    report = verify_evidence(bundle)
    assert "bad checkpoint signature" in report.problems


async def test_bundle_without_the_key_is_unknown_key_id(bundle: Path) -> None:
    _rewrite(bundle, "jwks.json", lambda _: b'{"keys": []}')
    report = verify_evidence(bundle)
    assert report.problems[0].startswith("unknown key id")


async def test_not_a_bundle_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "junk.zip"
    path.write_bytes(b"not a zip")
    report = verify_evidence(path)
    assert not report.ok
    assert report.problems == ["bundle unreadable: BadZipFile"]


async def test_unsealed_record_cannot_be_exported(
    backend: Backend, jwks: dict[str, Any]
) -> None:
    log = MessageLog(backend.store())
    await log.start()
    await log.append(make_record(0))
    await log.close()

    store = backend.store()
    await store.open()
    with pytest.raises(EvidenceError, match="not yet sealed") as caught:
        await export_evidence(store, "msg-0", jwks, backend.db_path.parent / "b.zip")
    await store.close()
    assert caught.value.log_reason == "evidence_not_sealed"


async def test_unknown_message_cannot_be_exported(
    bundle: Path, backend: Backend, jwks: dict[str, Any]
) -> None:
    store = backend.store()
    await store.open()
    with pytest.raises(EvidenceError) as caught:
        await export_evidence(store, "nope", jwks, backend.db_path.parent / "b.zip")
    await store.close()
    assert caught.value.log_reason == "evidence_not_found"


async def test_bundle_checks_out_against_the_node_s_trusted_keys(
    bundle: Path, jwks: dict[str, Any]
) -> None:
    report = verify_evidence(bundle, load_jwks(jwks))

    assert report.ok, report.problems
    assert report.trusted


async def test_bundle_from_another_node_fails_against_trusted_keys(
    bundle: Path,
) -> None:
    other = Ed25519PrivateKey.generate()
    other_jwks = {"keys": [public_jwk("other-node-1", other.public_key())]}

    untrusted = verify_evidence(bundle)
    trusted = verify_evidence(bundle, load_jwks(other_jwks))

    assert untrusted.ok
    assert not untrusted.trusted
    assert not trusted.ok
    assert trusted.problems == [
        "unknown key id: the checkpoint's key is not in the trusted keys"
    ]
