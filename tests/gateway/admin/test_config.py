"""The reload and check endpoints' answers, and reloading on SIGHUP."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import anyio
import orjson
import pytest
from structlog.testing import capture_logs

from gateway.admin import config as admin_config
from gateway.admin.config import error_list, watch_reload_signal
from gateway.deployment import ReloadRefusedError
from gateway.errors import ConfigError
from gateway.node import Node
from tests.gateway.admin.support import admin_request

pytestmark = pytest.mark.anyio

CONFIG_DIR = Path("/srv/mediator/config")
ACCESS = ConfigError("access.yaml", "unknown client WB/GOV/BCW/nobody", line=12)
PURPOSES = ConfigError("purposes.yaml", "not a list")


class _Node:
    """A node whose reload answers ``fresh`` or raises ``refusal``; counts calls."""

    def __init__(self, fresh: Any = None, refusal: ConfigError | None = None) -> None:
        self.fresh = fresh
        self.refusal = refusal
        self.reloads = 0
        self.reloaded = anyio.Event()
        self.deployment = SimpleNamespace(config_dir=CONFIG_DIR)

    async def reload(self) -> Any:
        self.reloads += 1
        self.reloaded.set()
        if self.refusal is not None:
            raise self.refusal
        return self.fresh


def _fresh(services: int, adapters: int, purposes: list[tuple[str, int]]) -> Any:
    return SimpleNamespace(
        directory=SimpleNamespace(services=lambda: [object()] * services),
        adapters=[object()] * adapters,
        policies=SimpleNamespace(
            purposes=[SimpleNamespace(id=i, version=v) for i, v in purposes]
        ),
    )


async def _answer(
    handler: Callable[..., Any], node: _Node
) -> tuple[int, dict[str, Any]]:
    response = await handler(admin_request("POST"), cast(Node, node))
    return response.status_code, orjson.loads(response.body)


# -- the answers -----------------------------------------------------------------------


def test_an_error_is_reported_by_file_line_and_reason_only() -> None:
    assert error_list([ACCESS, PURPOSES]) == [
        {"file": "access.yaml", "line": 12, "reason": ACCESS.reason},
        {"file": "purposes.yaml", "line": None, "reason": "not a list"},
    ]


async def test_a_reload_answers_what_is_now_loaded() -> None:
    """Counts of services and adapters, and the purposes in order, by version."""
    node = _Node(_fresh(3, 2, [("roster", 1), ("eligibility", 2)]))

    status, body = await _answer(admin_config.reload_config, node)

    assert status == 200
    assert body == {
        "reloaded": True,
        "services": 3,
        "adapters": 2,
        "purposes": ["eligibility@2", "roster@1"],
    }


async def test_a_refused_reload_answers_422_with_every_error() -> None:
    node = _Node(refusal=ReloadRefusedError(CONFIG_DIR, [ACCESS, PURPOSES]))

    status, body = await _answer(admin_config.reload_config, node)

    assert status == 422
    assert body == {"reloaded": False, "errors": error_list([ACCESS, PURPOSES])}


async def test_a_config_error_on_reload_answers_422_with_that_error() -> None:
    status, body = await _answer(admin_config.reload_config, _Node(refusal=PURPOSES))

    assert (status, body) == (
        422,
        {"reloaded": False, "errors": error_list([PURPOSES])},
    )


async def test_a_refused_reload_is_logged_with_its_count_only() -> None:
    node = _Node(refusal=ReloadRefusedError(CONFIG_DIR, [ACCESS, PURPOSES]))

    with capture_logs() as logs:
        await _answer(admin_config.reload_config, node)

    assert logs == [
        {"event": "config.reload_refused", "errors": 2, "log_level": "warning"}
    ]


@pytest.mark.parametrize(
    ("errors", "expected"),
    [
        ([], {"valid": True, "errors": []}),
        ([ACCESS], {"valid": False, "errors": error_list([ACCESS])}),
    ],
)
async def test_a_check_reads_the_running_config_directory(
    monkeypatch: pytest.MonkeyPatch,
    errors: list[ConfigError],
    expected: dict[str, Any],
) -> None:
    """The check runs on the node's directory and loads nothing."""
    checked: list[Path] = []

    def check(config_dir: Path) -> list[ConfigError]:
        checked.append(config_dir)
        return errors

    monkeypatch.setattr(admin_config, "check_deployment", check)
    node = _Node()

    status, body = await _answer(admin_config.check_config, node)

    assert (status, body) == (200, expected)
    assert checked == [CONFIG_DIR]
    assert node.reloads == 0


# -- SIGHUP ----------------------------------------------------------------------------


@pytest.fixture
def sighup_restored() -> Iterator[None]:
    """Whatever a test does to SIGHUP, the process's own handler comes back."""
    before = signal.getsignal(signal.SIGHUP)
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, before)


async def _reloaded(node: _Node) -> None:
    """Wait for the reload a signal started; what it logs follows without a pause."""
    with anyio.fail_after(5):
        await node.reloaded.wait()


@pytest.mark.usefixtures("sighup_restored")
async def test_sighup_reloads_the_node_until_watching_stops() -> None:
    node = _Node(_fresh(0, 0, []))
    stop = watch_reload_signal(cast(Node, node))

    os.kill(os.getpid(), signal.SIGHUP)
    await _reloaded(node)
    stop()

    assert asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP) is False


@pytest.mark.usefixtures("sighup_restored")
@pytest.mark.parametrize(
    ("refusal", "places"),
    [
        (
            ReloadRefusedError(CONFIG_DIR, [ACCESS, PURPOSES]),
            [("access.yaml", 12), ("purposes.yaml", None)],
        ),
        (PURPOSES, [("purposes.yaml", None)]),
    ],
)
async def test_a_reload_refused_on_sighup_logs_each_errors_place(
    refusal: ConfigError, places: list[tuple[str, int | None]]
) -> None:
    """Where each error is, never its text; the node keeps running."""
    node = _Node(refusal=refusal)
    stop = watch_reload_signal(cast(Node, node))
    try:
        with capture_logs() as logs:
            os.kill(os.getpid(), signal.SIGHUP)
            await _reloaded(node)
    finally:
        stop()

    assert logs == [
        {
            "event": "config.reload_refused",
            "file": file,
            "line": line,
            "log_level": "warning",
        }
        for file, line in places
    ]


async def test_without_sighup_nothing_is_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sighup = signal.SIGHUP
    monkeypatch.delattr(signal, "SIGHUP")

    stop = watch_reload_signal(cast(Node, _Node()))
    stop()

    assert asyncio.get_running_loop().remove_signal_handler(sighup) is False


@pytest.mark.parametrize("error", [NotImplementedError, RuntimeError, ValueError])
async def test_a_loop_that_takes_no_signal_handler_is_logged_not_fatal(
    monkeypatch: pytest.MonkeyPatch, error: type[Exception]
) -> None:
    def refuse(*_args: object) -> None:
        raise error

    monkeypatch.setattr(asyncio.get_running_loop(), "add_signal_handler", refuse)

    with capture_logs() as logs:
        stop = watch_reload_signal(cast(Node, _Node()))
    stop()

    assert logs == [{"event": "config.sighup_unavailable", "log_level": "warning"}]
