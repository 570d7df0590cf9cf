"""Archive files: one period's records, proved into the checkpoint that seals them.

An archive is a zip that anyone can check offline with the file alone (and, to know
which node signed it, the node's published keys). Its members:

- ``manifest.json``: the format, the period (name, start and end in epoch seconds),
  the seq range ``first_seq <= seq < end_seq``, the record count, the ``prev_hash``
  of the first record and the ``tree_size`` of the checkpoint;
- ``records.jsonl``: each record's canonical bytes exactly as stored, one a line (RFC
  8785 JSON holds no raw line break), in seq order;
- ``proofs.jsonl``: per record ``{"seq", "leaf_hash", "inclusion_path"}`` (hex), its
  RFC 9162 audit path in the checkpoint's tree;
- ``checkpoint.json``: the checkpoint in its stored (canonical JSON) form;
- ``jwks.json``: the public key that signed the checkpoint;
- ``bodies.jsonl``: ``{"seq", "entries"}`` for each record with encrypted bodies, the
  entries exactly as stored (as a string); ``body_keys.json``: the wrapped data keys
  by label, so that an officer's private key still opens them.

:func:`verify_archive` stops at the first problem and names it.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from gateway.msglog import merkle
from gateway.msglog.checkpoint import Checkpoint, PublicKey, load_jwks, verify_signature
from gateway.msglog.records import parse, record_hash

FORMAT = "shiksha-mediator-archive/1"
MANIFEST = "manifest.json"
RECORDS = "records.jsonl"
PROOFS = "proofs.jsonl"
BODIES = "bodies.jsonl"
BODY_KEYS = "body_keys.json"
CHECKPOINT = "checkpoint.json"
JWKS = "jwks.json"


class InvalidArchiveError(Exception):
    """The first thing wrong with an archive file; the message says what and where."""


@dataclass(frozen=True, slots=True)
class ArchiveReport:
    """The verdict on one archive file: what it holds, and the first problem."""

    period: str | None = None
    first_seq: int | None = None
    end_seq: int | None = None
    records: int = 0
    tree_size: int | None = None
    key_id: str | None = None
    #: Whether the checkpoint's key came from keys trusted out of band.
    trusted: bool = False
    problem: str | None = None

    @property
    def ok(self) -> bool:
        """True if every record is intact, in range, and proved into the checkpoint."""
        return self.problem is None


def verify_archive(
    path: Path, trusted_keys: Mapping[str, PublicKey] | None = None
) -> ArchiveReport:
    """Check an archive file offline; never raises for a bad file.

    The steps, each leaving at the first problem:

    1. the manifest is one of this format, with a seq range;
    2. the checkpoint's key is in ``trusted_keys`` (without them, in the file's
       own JWKS, which shows integrity but not origin), its signature is valid,
       and its tree covers the range;
    3. per record line, in order: it is the next seq of the range; its leaf hash
       is the one in its proof line; it claims its own seq and chains to the
       record before; its audit path leads to the checkpoint's root;
    4. no record of the range is missing and no line is left over;
    5. every record that logged encrypted bodies has its entries, matching the
       record's ``bodies_sha256``, and no entries belong to another record.
    """
    facts: dict[str, Any] = {"trusted": trusted_keys is not None}
    try:
        with zipfile.ZipFile(path) as archive:
            _verify(archive, trusted_keys, facts)
    except InvalidArchiveError as exc:
        return ArchiveReport(**facts, problem=str(exc))
    except (zipfile.BadZipFile, KeyError, zlib.error) as exc:
        return ArchiveReport(**facts, problem=f"archive unreadable: {exc}")
    except (RuntimeError, NotImplementedError) as exc:
        # zipfile's answer to a flipped flag: encrypted, or an unknown compression.
        return ArchiveReport(**facts, problem=f"archive unreadable: {exc}")
    except (OSError, ValueError, TypeError, EOFError) as exc:
        kind = type(exc).__name__
        return ArchiveReport(**facts, problem=f"archive unreadable: {kind}")
    return ArchiveReport(**facts)


def _verify(
    archive: zipfile.ZipFile,
    trusted_keys: Mapping[str, PublicKey] | None,
    facts: dict[str, Any],
) -> None:
    # step 1: the manifest
    manifest = orjson.loads(archive.read(MANIFEST))
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InvalidArchiveError(f"{MANIFEST} is not a {FORMAT} manifest")
    first, end = _int(manifest, "first_seq"), _int(manifest, "end_seq")
    if not 0 <= first < end:
        raise InvalidArchiveError(f"{MANIFEST} names no seq range")
    facts.update(period=str(manifest.get("period")), first_seq=first, end_seq=end)

    # step 2: the checkpoint
    checkpoint = _checkpoint(archive, trusted_keys, facts)
    if checkpoint.tree_size < end or manifest.get("tree_size") != checkpoint.tree_size:
        raise InvalidArchiveError(
            f"checkpoint of size {checkpoint.tree_size} does not cover seq {end - 1}"
        )

    # steps 3 and 4: the records, their proofs, the chain
    bodies_sha256 = _records(archive, manifest, checkpoint, facts)

    # step 5: the encrypted bodies
    _bodies(archive, bodies_sha256)


def _checkpoint(
    archive: zipfile.ZipFile,
    trusted_keys: Mapping[str, PublicKey] | None,
    facts: dict[str, Any],
) -> Checkpoint:
    value = orjson.loads(archive.read(CHECKPOINT))
    if not isinstance(value, dict):
        raise InvalidArchiveError(f"{CHECKPOINT} is not a checkpoint")
    checkpoint = Checkpoint.from_dict(value)
    facts.update(tree_size=checkpoint.tree_size, key_id=checkpoint.key_id)
    jwks = orjson.loads(archive.read(JWKS))
    keys = load_jwks(jwks if isinstance(jwks, dict) else {})
    if trusted_keys is not None:
        keys = dict(trusted_keys)
    key = keys.get(checkpoint.key_id)
    if key is None:
        where = "the archive's JWKS" if trusted_keys is None else "the trusted keys"
        raise InvalidArchiveError(
            f"unknown key id: {checkpoint.key_id} is not in {where}"
        )
    if not verify_signature(checkpoint, key):
        raise InvalidArchiveError("bad checkpoint signature")
    return checkpoint


def _records(
    archive: zipfile.ZipFile,
    manifest: Mapping[str, Any],
    checkpoint: Checkpoint,
    facts: dict[str, Any],
) -> dict[int, str]:
    """Steps 3 and 4; returns ``bodies_sha256`` by seq for step 5."""
    first, end = int(manifest["first_seq"]), int(manifest["end_seq"])
    prev_hash = manifest.get("prev_hash")
    bodies: dict[int, str] = {}
    seq = first
    with archive.open(RECORDS) as records, archive.open(PROOFS) as proofs:
        pairs = itertools.zip_longest(_lines(records), _lines(proofs))
        for line, proof_line in pairs:
            if line is None:
                raise InvalidArchiveError(
                    f"missing record: seq {seq} is not in the archive"
                )
            if proof_line is None:
                raise InvalidArchiveError(f"{PROOFS} has no proof for seq {seq}")
            if seq >= end:
                raise InvalidArchiveError(
                    f"a record after seq {end - 1} is in the archive"
                )
            record = _record(seq, line, prev_hash)
            _check_proof(seq, line, orjson.loads(proof_line), checkpoint)
            prev_hash = record_hash(line)
            if isinstance(record.get("bodies_sha256"), str):
                bodies[seq] = record["bodies_sha256"]
            seq += 1
            facts["records"] = seq - first
    if seq < end:
        raise InvalidArchiveError(f"missing record: seq {seq} is not in the archive")
    return bodies


def _record(seq: int, line: bytes, prev_hash: object) -> dict[str, Any]:
    """Step 3 for one line: it is the record of ``seq`` and chains to the one before."""
    try:
        record = parse(line)
    except ValueError as exc:
        raise InvalidArchiveError(
            f"hash mismatch at seq {seq}: unreadable record"
        ) from exc
    claimed = record.get("seq")
    if isinstance(claimed, int) and claimed > seq:
        raise InvalidArchiveError(f"missing record: seq {seq} is not in the archive")
    if claimed != seq:
        raise InvalidArchiveError(f"record in place of seq {seq} claims seq {claimed}")
    if record.get("prev_hash") != prev_hash:
        raise InvalidArchiveError(
            f"hash mismatch at seq {seq}: its prev_hash is not the record before"
        )
    return record


def _check_proof(seq: int, line: bytes, proof: Any, checkpoint: Checkpoint) -> None:
    """Step 3 for one line: its leaf is the proved one, and the proof holds."""
    if not isinstance(proof, dict) or proof.get("seq") != seq:
        raise InvalidArchiveError(f"{PROOFS} has no proof for seq {seq} in its place")
    leaf = merkle.leaf_hash(line)
    if not hmac.compare_digest(leaf.hex(), str(proof.get("leaf_hash"))):
        raise InvalidArchiveError(
            f"hash mismatch at seq {seq}: the record bytes are not its proved leaf"
        )
    path = proof.get("inclusion_path")
    if not isinstance(path, list) or not all(isinstance(n, str) for n in path):
        raise InvalidArchiveError(f"inclusion proof of seq {seq} is malformed")
    nodes = [bytes.fromhex(node) for node in path]
    root = bytes.fromhex(checkpoint.root_hash)
    if not merkle.verify_inclusion(seq, checkpoint.tree_size, leaf, nodes, root):
        raise InvalidArchiveError(
            f"inclusion proof of seq {seq} does not verify against the checkpoint"
        )


def _bodies(archive: zipfile.ZipFile, expected: dict[int, str]) -> None:
    """Step 5: the body entries are the ones the records hashed."""
    names = set(archive.namelist())
    if BODIES in names:
        with archive.open(BODIES) as lines:
            for line in _lines(lines):
                value = orjson.loads(line)
                seq, entries = value.get("seq"), value.get("entries")
                digest = expected.pop(seq, None) if isinstance(seq, int) else None
                if digest is None or not isinstance(entries, str):
                    raise InvalidArchiveError(
                        f"{BODIES} holds entries of no record ({seq})"
                    )
                actual = hashlib.sha256(entries.encode()).hexdigest()
                if not hmac.compare_digest(actual, digest):
                    raise InvalidArchiveError(
                        f"bodies of seq {seq} do not match the digest in the record"
                    )
    if expected:
        raise InvalidArchiveError(f"bodies of seq {min(expected)} are missing")


def _lines(member: IO[bytes]) -> Iterator[bytes]:
    for line in member:
        yield line.rstrip(b"\n")


def _int(value: Mapping[str, Any], key: str) -> int:
    found = value.get(key)
    if isinstance(found, bool) or not isinstance(found, int):
        raise InvalidArchiveError(f"{MANIFEST} has no integer {key}")
    return found
