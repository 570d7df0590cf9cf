"""Encrypted bodies in evidence bundles: exported beside the records, checked offline.

For each record that has encrypted bodies the bundle holds ``bodies/<seq>.json``,
the entries exactly as stored (the record's ``bodies_sha256`` is their digest).
Given the security officer's private key, the export also opens them and adds
``bodies/<seq>.request.bin`` and ``bodies/<seq>.response.bin``, the exact bytes;
the verifier checks those against the digests in the entries and the record.
"""

from __future__ import annotations

import hashlib
import hmac
import zipfile
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gateway.msglog.bodies import BodyKeyError
from gateway.msglog.bodylog import open_stored, stored_label
from gateway.msglog.records import parse
from gateway.msglog.store import LogStore, StoredRecord

_RECORD_DIGEST = {"request": "request_body_sha256", "response": "response_body_sha256"}


async def body_files(
    store: LogStore, rows: list[StoredRecord], officer_key: X25519PrivateKey | None
) -> dict[str, bytes]:
    """The bundle files of the rows' encrypted bodies, opened if a key is given.

    Raises BodyKeyError if the key does not open them, NodeError(LOG_UNAVAILABLE)
    if the store fails.
    """
    stored = await store.bodies([row.seq for row in rows])
    files: dict[str, bytes] = {}
    for seq, entries in sorted(stored.items()):
        files[f"bodies/{seq}.json"] = entries
        if officer_key is not None:
            files.update(await _opened(store, seq, entries, officer_key))
    return files


async def _opened(
    store: LogStore, seq: int, entries: bytes, officer_key: X25519PrivateKey
) -> dict[str, bytes]:
    label = stored_label(entries)
    if label is None:
        return {}
    envelope = await store.body_key(label)
    if envelope is None:
        raise BodyKeyError("the data key of the bodies is not stored")
    plain = open_stored(entries, parse(envelope), officer_key)
    return {f"bodies/{seq}.{part}.bin": body for part, body in plain.items()}


def body_problems(
    bundle: zipfile.ZipFile, seq: int, record: Mapping[str, Any]
) -> list[str]:
    """What is wrong with the bodies of the record at ``seq`` in the bundle."""
    digest = record.get("bodies_sha256")
    if not isinstance(digest, str):
        return []
    names = set(bundle.namelist())
    name = f"bodies/{seq}.json"
    if name not in names:
        return [f"bodies of seq {seq} are missing from the bundle"]
    stored = bundle.read(name)
    if not hmac.compare_digest(hashlib.sha256(stored).hexdigest(), digest):
        return [f"bodies of seq {seq} do not match the digest in the record"]
    entries = parse(stored).get("entries", {})
    problems: list[str] = []
    for part, key in _RECORD_DIGEST.items():
        plain_name = f"bodies/{seq}.{part}.bin"
        if plain_name not in names:
            continue
        plain = hashlib.sha256(bundle.read(plain_name)).hexdigest()
        entry = entries.get(part) if isinstance(entries, dict) else None
        logged = entry.get("sha256") if isinstance(entry, dict) else None
        if plain != logged or plain != record.get(key):
            problems.append(f"{part} body of seq {seq} does not match its digest")
    return problems
