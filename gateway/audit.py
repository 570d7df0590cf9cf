"""The admin audit log: who changed what, and when, in a hash chain.

One JSON object per line in ``STATE_DIR/audit.jsonl``::

    {"seq": 3, "ts": 1796378400.5, "actor": "ops:alice", "action": "keys.rotate",
     "target": "mediator-20261204-1a2b3c4d", "details": {...},
     "prev_hash": "<hash of line 2>", "hash": "<sha256 of this entry>"}

``hash`` is the SHA-256 of the entry's RFC 8785 canonical form without ``hash``;
``prev_hash`` is the ``hash`` of the line before (64 zeros for the first). Editing,
removing or reordering a line breaks the chain, and :meth:`AuditLog.verify` names
the first broken line. Appends from several processes are serialised by an
exclusive ``fcntl`` lock on the file itself. Details must never carry a secret,
a token, a body or a student id: callers pass only names, ids and times.
"""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rfc8785

from gateway.errors import ConfigError
from gateway.privatefiles import create_private_folder

FILE_NAME = "audit.jsonl"
GENESIS = "0" * 64
_FIELDS = frozenset({"seq", "ts", "actor", "action", "target", "details", "prev_hash"})


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One admin change as it was written."""

    seq: int
    ts: float
    actor: str
    action: str
    target: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


def default_actor() -> str:
    """The operating-system user running this process, as ``os:NAME``."""
    try:
        return f"os:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"os:uid-{os.getuid()}"


class AuditLog:
    """An append-only, hash-chained JSONL file of admin changes."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> AuditLog:
        return cls(state_dir / FILE_NAME)

    def append(
        self,
        actor: str,
        action: str,
        target: str,
        details: dict[str, Any] | None = None,
    ) -> AuditEntry:
        """Add one entry after the last one and flush it to disk.

        :raises ConfigError: the file cannot be written, or its last line is not a
            valid entry (the chain would continue from a broken end).
        """
        create_private_folder(self.path.parent)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise ConfigError(str(self.path), "the audit log cannot be opened") from exc
        with os.fdopen(fd, "r+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            seq, prev_hash = self._tail(handle.read())
            entry = _seal(
                {
                    "seq": seq + 1,
                    "ts": round(time.time(), 3),
                    "actor": actor,
                    "action": action,
                    "target": target,
                    "details": details or {},
                    "prev_hash": prev_hash,
                }
            )
            handle.write(_line(entry))
            handle.flush()
            os.fsync(handle.fileno())
        return entry

    def verify(self) -> int:
        """Check every line and the chain; return the number of entries.

        A missing file is an empty log.

        :raises ConfigError: with the number of the first line that is malformed,
            out of sequence, or whose hashes do not chain.
        """
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise ConfigError(str(self.path), "the audit log cannot be read") from exc

        prev_hash, count = GENESIS, 0
        for number, raw in enumerate(data.splitlines(), start=1):
            entry = _parse(raw, str(self.path), number)
            if entry.seq != number or entry.prev_hash != prev_hash:
                raise ConfigError(
                    str(self.path), "the hash chain is broken", line=number
                )
            prev_hash, count = entry.hash, number
        return count

    def entries(self) -> list[AuditEntry]:
        """Every entry, after :meth:`verify` has passed.

        :raises ConfigError: as :meth:`verify`.
        """
        self.verify()
        if not self.path.exists():
            return []
        lines = self.path.read_bytes().splitlines()
        return [_parse(raw, str(self.path), n) for n, raw in enumerate(lines, 1)]

    def _tail(self, data: bytes) -> tuple[int, str]:
        lines = data.splitlines()
        if not lines:
            return 0, GENESIS
        last = _parse(lines[-1], str(self.path), len(lines))
        return last.seq, last.hash


def _seal(body: dict[str, Any]) -> AuditEntry:
    digest = hashlib.sha256(rfc8785.dumps(body)).hexdigest()
    return AuditEntry(
        int(body["seq"]),
        float(body["ts"]),
        str(body["actor"]),
        str(body["action"]),
        str(body["target"]),
        dict(body["details"]),
        str(body["prev_hash"]),
        digest,
    )


def _line(entry: AuditEntry) -> bytes:
    document = {
        "seq": entry.seq,
        "ts": entry.ts,
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "details": entry.details,
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }
    return json.dumps(document, sort_keys=True).encode("utf-8") + b"\n"


def _parse(raw: bytes, source: str, number: int) -> AuditEntry:
    try:
        document = json.loads(raw)
        claimed = str(document.pop("hash"))
        entry = _seal(document)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(source, "not an audit entry", line=number) from exc
    if set(document) != _FIELDS:
        raise ConfigError(source, "the entry has unknown fields", line=number)
    if entry.hash != claimed:
        raise ConfigError(source, "the entry does not match its hash", line=number)
    return entry
