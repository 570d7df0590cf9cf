"""A serving process freezes the objects its started node holds, and a reload
freezes anew so that a replaced configuration can still be collected."""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.app import create_app
from gateway.demo.setup import prepare
from gateway.deployment import load_deployment
from gateway.errors import NodeError, Reason
from gateway.node import Node, freeze_long_lived
from gateway.operations import Operations
from tests.gateway.conftest import Harness


class _Cycle:
    """An object that only the cyclic collector can free."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()


def test_freezing_hides_what_is_alive_from_the_collector(unfrozen: None) -> None:
    """Objects alive at the freeze are moved to the permanent generation."""
    kept = _Cycle()

    freeze_long_lived()

    assert gc.get_freeze_count() > 0
    assert not any(seen is kept for seen in gc.get_objects())


@pytest.mark.anyio
async def test_a_reload_lets_frozen_garbage_be_collected(
    harness: Harness, unfrozen: None
) -> None:
    """A cycle frozen with the old configuration is freed after a reload."""
    garbage = _Cycle()
    gone = weakref.ref(garbage)
    freeze_long_lived()
    del garbage
    gc.collect()
    assert gone() is not None  # frozen: the collector does not see it

    await harness.node.reload()

    assert gone() is None
    assert gc.get_freeze_count() > 0


@pytest.mark.anyio
async def test_a_node_that_is_not_serving_freezes_nothing(harness: Harness) -> None:
    """Tests and tools that start a node leave the collector alone."""
    await harness.node.reload()

    assert gc.get_freeze_count() == 0


@pytest.mark.anyio
async def test_the_serving_app_freezes_after_start_and_thaws_at_stop(
    tmp_path: Path,
    registry_db: Path,
    monkeypatch: pytest.MonkeyPatch,
    unfrozen: None,
) -> None:
    """create_app(freeze_gc=True) freezes once the node runs, and undoes it."""
    demo = prepare(tmp_path / "deployment", registry_db=registry_db)
    for name, value in demo.environ().items():
        monkeypatch.setenv(name, value)
    deployment = load_deployment(demo.config_dir, demo.state_dir)
    app = create_app(deployment, passphrase=demo.passphrase, freeze_gc=True)

    starlette = app.lifespan_app
    assert starlette is not None
    async with starlette.router.lifespan_context(starlette):
        frozen = gc.get_freeze_count()
        assert app.node is not None

    assert frozen > 0
    assert gc.get_freeze_count() == 0


@pytest.mark.anyio
async def test_a_start_that_fails_closes_what_it_opened(
    tmp_path: Path, registry_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The message log's writer thread and tasks, the key watcher and the provider
    client do not outlive a node whose last start step failed."""
    demo = prepare(tmp_path / "deployment", registry_db=registry_db)
    for name, value in demo.environ().items():
        monkeypatch.setenv(name, value)
    deployment = load_deployment(demo.config_dir, demo.state_dir)
    client = httpx.AsyncClient()

    async def refuse(self: Operations) -> None:
        raise NodeError(Reason.LOG_UNAVAILABLE, log_reason="monitoring_store")

    monkeypatch.setattr(Operations, "start", refuse)
    before = set(threading.enumerate())  # earlier tests' threads are not this node's

    with pytest.raises(NodeError, match="log_unavailable"):
        await Node.start(deployment, http_client=client, passphrase=demo.passphrase)

    assert client.is_closed
    left = {t.name for t in set(threading.enumerate()) - before}
    assert "msglog-sqlite" not in left
    running = {t.get_name() for t in asyncio.all_tasks() if not t.done()}
    assert not running & {"msglog-writer", "msglog-sealer", "keyring-poll"}
