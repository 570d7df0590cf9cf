"""Archive files checked offline, and the ways a changed one is caught."""

from __future__ import annotations

import asyncio
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.msglog import KeySigner, SqliteLogStore, load_jwks, public_jwk
from gateway.msglog.archive import ArchiveRun, archive_log
from gateway.msglog.archivefile import verify_archive
from tests.gateway.msglog.conftest import DAY, DAY_ZERO, build_dated_log


@pytest.fixture
def archived(
    db_path: Path, tmp_path: Path, signer: KeySigner, jwks: dict[str, Any]
) -> Path:
    """The archive file of day 0 (records 0 to 4) of a 15-record log."""
    out = tmp_path / "archives"
    out.mkdir()

    async def make() -> ArchiveRun:
        store = SqliteLogStore(db_path)
        await build_dated_log(store, signer)
        await store.open()
        try:
            return await archive_log(
                store, out, cutoff=DAY_ZERO + DAY, kind="day", keys=load_jwks(jwks)
            )
        finally:
            await store.close()

    (entry,) = asyncio.run(make()).made
    return out / entry.name


def _rewrite(
    source: Path, target: Path, member: str, change: Callable[[bytes], bytes]
) -> Path:
    """A copy of ``source`` with one member's bytes changed."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for item in old.infolist():
            data = old.read(item)
            new.writestr(item, change(data) if item.filename == member else data)
    return target


def _without_line(index: int) -> Callable[[bytes], bytes]:
    def change(data: bytes) -> bytes:
        lines = data.splitlines(keepends=True)
        del lines[index]
        return b"".join(lines)

    return change


def test_an_intact_archive_is_valid(archived: Path, jwks: dict[str, Any]) -> None:
    report = verify_archive(archived, load_jwks(jwks))

    assert report.ok, report.problem
    assert (report.period, report.first_seq, report.end_seq) == ("2023-11-14", 0, 5)
    assert (report.records, report.trusted) == (5, True)


def test_without_trusted_keys_the_carried_key_is_used(archived: Path) -> None:
    report = verify_archive(archived)

    assert report.ok
    assert not report.trusted


@pytest.mark.parametrize("member", ["records.jsonl", "proofs.jsonl", "manifest.json"])
def test_a_byte_flipped_in_a_member_is_caught(
    archived: Path, tmp_path: Path, member: str
) -> None:
    data = bytearray(archived.read_bytes())
    with zipfile.ZipFile(archived) as archive:
        item = archive.getinfo(member)
    # The member's bytes follow its 30-byte local header, name and extra field.
    names = int.from_bytes(
        data[item.header_offset + 26 : item.header_offset + 28], "little"
    )
    extra = int.from_bytes(
        data[item.header_offset + 28 : item.header_offset + 30], "little"
    )
    start = item.header_offset + 30 + names + extra
    data[start + item.compress_size // 2] ^= 0x01
    flipped = tmp_path / "flipped.zip"
    flipped.write_bytes(bytes(data))

    report = verify_archive(flipped)

    assert report.problem is not None
    assert report.problem.startswith("archive unreadable")


def test_a_changed_record_is_a_hash_mismatch(archived: Path, tmp_path: Path) -> None:
    forged = _rewrite(
        archived,
        tmp_path / "forged.zip",
        "records.jsonl",
        lambda data: data.replace(b'"path":"/students/2"', b'"path":"/students/7"'),
    )

    report = verify_archive(forged)

    assert report.problem == (
        "hash mismatch at seq 2: the record bytes are not its proved leaf"
    )


@pytest.mark.parametrize("members", [("records.jsonl",), ("records.jsonl", "proofs")])
def test_a_removed_record_is_named(
    archived: Path, tmp_path: Path, members: tuple[str, ...]
) -> None:
    forged = _rewrite(archived, tmp_path / "a.zip", "records.jsonl", _without_line(2))
    if len(members) == 2:
        forged = _rewrite(forged, tmp_path / "b.zip", "proofs.jsonl", _without_line(2))

    report = verify_archive(forged)

    assert report.problem == "missing record: seq 2 is not in the archive"


def test_a_removed_last_record_is_named(archived: Path, tmp_path: Path) -> None:
    forged = _rewrite(archived, tmp_path / "a.zip", "records.jsonl", _without_line(4))

    assert verify_archive(forged).problem == (
        "missing record: seq 4 is not in the archive"
    )


def test_a_swapped_proof_does_not_verify(archived: Path, tmp_path: Path) -> None:
    def swap(data: bytes) -> bytes:
        lines = data.splitlines(keepends=True)
        lines[1], lines[2] = lines[2], lines[1]
        return b"".join(lines)

    forged = _rewrite(archived, tmp_path / "forged.zip", "proofs.jsonl", swap)

    assert verify_archive(forged).problem == (
        "proofs.jsonl has no proof for seq 1 in its place"
    )


def test_a_key_not_trusted_is_an_unknown_key(archived: Path) -> None:
    other = Ed25519PrivateKey.generate().public_key()
    trusted = load_jwks({"keys": [public_jwk("someone-else", other)]})

    report = verify_archive(archived, trusted)

    assert report.problem is not None
    assert report.problem.startswith("unknown key id")


def test_a_checkpoint_signed_by_another_key_is_a_bad_signature(
    archived: Path, tmp_path: Path, jwks: dict[str, Any]
) -> None:
    forged = _rewrite(
        archived,
        tmp_path / "forged.zip",
        "checkpoint.json",
        lambda data: data.replace(b'"tree_size":15', b'"tree_size":16'),
    )

    assert verify_archive(forged, load_jwks(jwks)).problem == "bad checkpoint signature"
