"""The keyed hash of student ids, and its key in the state directory."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from gateway.subjects import SubjectHasher

ENV = "MEDIATOR_SUBJECT_HASH_KEY_TEST"


def test_workers_that_start_together_share_one_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every worker that found no key may create one; all end with the first."""
    monkeypatch.delenv(ENV, raising=False)
    start = threading.Barrier(8)
    hashes: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        start.wait()
        try:
            hashes.append(
                SubjectHasher.from_state(tmp_path, ENV).hash("WB201900000013")
            )
        except BaseException as exc:  # noqa: BLE001 (collected for the assertion)
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(set(hashes)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["subject-hash.key"]


def test_a_worker_that_lost_the_race_reads_the_winners_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It saw no key, but another process linked one before it could."""
    monkeypatch.delenv(ENV, raising=False)
    first = SubjectHasher.from_state(tmp_path, ENV).hash("WB201900000013")
    monkeypatch.setattr(Path, "exists", lambda _self: False)

    second = SubjectHasher.from_state(tmp_path, ENV).hash("WB201900000013")

    assert second == first
