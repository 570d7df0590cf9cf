"""Evidence bundles: one exchange's records, proved into a signed checkpoint.

A bundle is a zip that a third party checks offline, with nothing but the bundle:

- ``manifest.json``: the message id and, per record, its seq, hash, the tree size
  of the checkpoint and the RFC 9162 inclusion path (hex);
- ``records/<seq>.json``: each record's canonical bytes exactly as stored;
- ``checkpoint.json``: the latest checkpoint, which covers every record;
- ``jwks.json``: the node's public keys;
- ``bodies/...``: encrypted bodies and, if exported with the officer's key,
  their plaintext (see :mod:`gateway.msglog.bodyevidence`).

:func:`verify_evidence` checks, in order: the checkpoint's key is in the bundle,
its signature is valid, and for each record the bytes match their hash, the record
is the one named, and the leaf hash recomputed from the bytes is included under
the checkpoint's root.
"""

from __future__ import annotations

import contextlib
import hmac
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gateway.errors import NodeError, Reason
from gateway.msglog import merkle, proofs
from gateway.msglog.bodyevidence import body_files, body_problems
from gateway.msglog.checkpoint import Checkpoint, load_jwks, verify_signature
from gateway.msglog.records import parse, record_hash
from gateway.msglog.store import LogStore, SearchQuery, StoredRecord
from gateway.privatefiles import create_private_file

FORMAT = "shiksha-mediator-evidence/1"
MAX_RECORDS = 1000


class EvidenceError(NodeError):
    """Evidence cannot be exported: the message is not in the log, or not sealed yet.

    ``log_reason`` is ``evidence_not_found``, ``evidence_not_sealed``, or
    ``evidence_log_incomplete`` when records the checkpoint covers are gone.
    """

    def __init__(self, log_reason: str, detail: str) -> None:
        super().__init__(Reason.LOG_UNAVAILABLE, log_reason=log_reason)
        self.detail = detail

    def __str__(self) -> str:
        return self.detail


@dataclass(frozen=True, slots=True)
class EvidenceReport:
    """The verdict on a bundle: every problem found, none if it holds."""

    message_id: str | None
    records: list[int] = field(default_factory=list)
    tree_size: int | None = None
    key_id: str | None = None
    problems: list[str] = field(default_factory=list)
    #: Whether the checkpoint key was checked against keys trusted out of band.
    trusted: bool = False

    @property
    def ok(self) -> bool:
        """True if every record is proved into a validly signed checkpoint."""
        return not self.problems and bool(self.records)


async def export_evidence(
    store: LogStore,
    message_id: str,
    public_keys_jwks: Mapping[str, Any],
    out: Path,
    *,
    officer_key: X25519PrivateKey | None = None,
) -> list[int]:
    """Write the evidence bundle of ``message_id`` to ``out``; returns the seqs.

    With ``officer_key`` the encrypted bodies are included decrypted too. Raises
    EvidenceError if no record has that message id or the latest checkpoint does
    not cover all of them yet, BodyKeyError if the key does not open the bodies,
    and NodeError(LOG_UNAVAILABLE) if the store fails.
    """
    rows = sorted(
        await store.search(SearchQuery(message_id=message_id, limit=MAX_RECORDS)),
        key=lambda row: row.seq,
    )
    if not rows:
        raise EvidenceError("evidence_not_found", "no record has this message id")
    checkpoint = await store.latest_checkpoint()
    if checkpoint is None or checkpoint.tree_size <= rows[-1].seq:
        raise EvidenceError("evidence_not_sealed", "the record is not yet sealed")

    paths = await inclusion_paths(store, rows, checkpoint)
    manifest = {
        "format": FORMAT,
        "message_id": message_id,
        "records": [
            _entry(row, checkpoint, path) for row, path in zip(rows, paths, strict=True)
        ],
    }
    files = await body_files(store, rows, officer_key)
    _write_zip(out, manifest, rows, checkpoint, public_keys_jwks, files=files)
    return [row.seq for row in rows]


async def inclusion_paths(
    store: LogStore, rows: list[StoredRecord], checkpoint: Checkpoint
) -> list[list[bytes]]:
    """The audit paths of ``rows`` under ``checkpoint``.

    From the stored interior nodes (O(log n) rows); if those do not give proofs
    that verify, from every leaf in one streaming pass. Raises
    NodeError(LOG_UNAVAILABLE) if the store fails.
    """
    seqs = [row.seq for row in rows]
    fast = await proofs.checked_inclusion_proofs(
        store,
        seqs,
        checkpoint.tree_size,
        [row.leaf_hash for row in rows],
        bytes.fromhex(checkpoint.root_hash),
    )
    if fast is not None:
        return fast
    return await streamed_inclusion_paths(store, seqs, checkpoint.tree_size)


async def streamed_inclusion_paths(
    store: LogStore, seqs: list[int], size: int
) -> list[list[bytes]]:
    """The audit paths of ``seqs`` in the tree of ``size``, in one pass.

    Raises EvidenceError if the log holds fewer than ``size`` records.
    """
    builders = [merkle.InclusionProofBuilder(seq, size) for seq in seqs]
    fed = 0
    async with contextlib.aclosing(store.iter_leaf_hashes()) as chunks:
        async for chunk in chunks:
            for leaf in chunk[: size - fed]:
                for builder in builders:
                    builder.add(leaf)
            fed += len(chunk)
            if fed >= size:
                break
    if fed < size:
        raise EvidenceError(
            "evidence_log_incomplete",
            f"the log holds {fed} of the {size} records its latest checkpoint "
            "covers: `mediator log verify` names what is missing",
        )
    return [builder.proof() for builder in builders]


def _entry(
    row: StoredRecord, checkpoint: Checkpoint, path: list[bytes]
) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "file": f"records/{row.seq}.json",
        "hash": row.hash,
        "tree_size": checkpoint.tree_size,
        "inclusion_path": [node.hex() for node in path],
    }


def _write_zip(
    out: Path,
    manifest: dict[str, Any],
    rows: list[StoredRecord],
    checkpoint: Checkpoint,
    jwks: Mapping[str, Any],
    *,
    files: Mapping[str, bytes],
) -> None:
    # The bundle holds the exchange's records, and its bodies when opened.
    create_private_file(out)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr(
            "manifest.json", orjson.dumps(manifest, option=orjson.OPT_INDENT_2)
        )
        for row in rows:
            bundle.writestr(f"records/{row.seq}.json", row.canonical)
        bundle.writestr("checkpoint.json", checkpoint.to_json())
        bundle.writestr(
            "jwks.json", orjson.dumps(dict(jwks), option=orjson.OPT_INDENT_2)
        )
        for name, data in files.items():
            bundle.writestr(name, data)


def verify_evidence(
    path: Path, trusted_keys: Mapping[str, Any] | None = None
) -> EvidenceReport:
    """Check a bundle offline (see the module's steps); never raises for a bad one.

    ``trusted_keys`` (kid to public key, from the node's published JWKS obtained
    out of band) decides who may have signed the checkpoint. Without it the keys
    carried in the bundle are used, which proves the bundle is intact but not
    which node made it: the report says so in ``trusted``.
    """
    try:
        with zipfile.ZipFile(path) as bundle:
            return _verify_bundle(bundle, trusted_keys)
    except (OSError, zipfile.BadZipFile, KeyError, ValueError, TypeError) as exc:
        return EvidenceReport(
            None, problems=[f"bundle unreadable: {type(exc).__name__}"]
        )


def _verify_bundle(
    bundle: zipfile.ZipFile, trusted_keys: Mapping[str, Any] | None
) -> EvidenceReport:
    manifest = orjson.loads(bundle.read("manifest.json"))
    checkpoint = Checkpoint.from_dict(orjson.loads(bundle.read("checkpoint.json")))
    bundled = load_jwks(orjson.loads(bundle.read("jwks.json")))
    keys = bundled if trusted_keys is None else trusted_keys
    message_id = manifest["message_id"]
    problems: list[str] = []

    # step 1 and 2: the checkpoint is signed by a trusted key (or, without one, by
    # a key in the bundle, which shows integrity but not origin)
    key = keys.get(checkpoint.key_id)
    if key is None:
        where = "the bundle" if trusted_keys is None else "the trusted keys"
        problems.append(f"unknown key id: the checkpoint's key is not in {where}")
    elif not verify_signature(checkpoint, key):
        problems.append("bad checkpoint signature")

    # step 3 to 5: each record is intact, the one named, and in the tree
    seqs: list[int] = []
    for entry in manifest["records"]:
        seq = int(entry["seq"])
        seqs.append(seq)
        canonical = bundle.read(entry["file"])
        found = _record_problems(seq, canonical, entry, message_id, checkpoint)
        problems.extend(found or body_problems(bundle, seq, parse(canonical)))

    return EvidenceReport(
        message_id=message_id,
        records=seqs,
        tree_size=checkpoint.tree_size,
        key_id=checkpoint.key_id,
        problems=problems,
        trusted=trusted_keys is not None,
    )


def _record_problems(
    seq: int,
    canonical: bytes,
    entry: Mapping[str, Any],
    message_id: str,
    checkpoint: Checkpoint,
) -> list[str]:
    if not hmac.compare_digest(record_hash(canonical), str(entry["hash"])):
        return [f"hash mismatch at seq {seq}: the record bytes do not match its hash"]
    record = parse(canonical)
    if record.get("seq") != seq or record.get("message_id") != message_id:
        return [f"record at seq {seq} is not the record named in the manifest"]

    path = [bytes.fromhex(node) for node in entry["inclusion_path"]]
    root = bytes.fromhex(checkpoint.root_hash)
    leaf = merkle.leaf_hash(canonical)
    if not merkle.verify_inclusion(seq, checkpoint.tree_size, leaf, path, root):
        return [f"inclusion proof of seq {seq} does not verify against the checkpoint"]
    return []
