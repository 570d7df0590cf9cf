"""The app factory of worker processes: how many share the node, and what they need."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from gateway.app import app_from_env, worker_count
from gateway.errors import ConfigError

CONFIG = Path(__file__).resolve().parents[2] / "config"


@pytest.mark.parametrize(("declared", "count"), [("", 1), ("1", 1), (" 3 ", 3)])
def test_the_declared_worker_count_is_read(
    monkeypatch: pytest.MonkeyPatch, declared: str, count: int
) -> None:
    monkeypatch.setenv("MEDIATOR_WORKERS", declared)

    assert worker_count() == count


@pytest.mark.parametrize("declared", ["0", "-1", "two", "1.5", "\u00b2", "\u0661"])
def test_a_worker_count_that_is_not_one_or_more_is_refused(
    monkeypatch: pytest.MonkeyPatch, declared: str
) -> None:
    monkeypatch.setenv("MEDIATOR_WORKERS", declared)

    with pytest.raises(ConfigError):
        worker_count()


@pytest.mark.parametrize(("declared", "count"), [("", 2), ("1", 2), ("4", 4)])
def test_a_process_a_supervisor_started_counts_as_one_of_several(
    monkeypatch: pytest.MonkeyPatch, declared: str, count: int
) -> None:
    # A leftover MEDIATOR_WORKERS=1 must not hide the siblings.
    monkeypatch.setenv("MEDIATOR_WORKERS", declared)
    monkeypatch.setattr(multiprocessing, "parent_process", object)

    assert worker_count() == count


def test_workers_of_a_node_without_redis_do_not_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Each would keep its own replay cache: an assertion would pass once per worker.
    monkeypatch.setenv("MEDIATOR_CONFIG", str(CONFIG))
    monkeypatch.setenv("MEDIATOR_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("MEDIATOR_WORKERS", "2")
    monkeypatch.delenv("MEDIATOR_REDIS_URL", raising=False)

    with pytest.raises(ConfigError, match=r"redis\.url"):
        app_from_env()
