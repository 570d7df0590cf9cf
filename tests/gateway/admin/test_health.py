"""Health for load balancers: each check, maintenance, the cache; environment facts."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from redis.exceptions import RedisError

from gateway.admin import health
from gateway.admin.health import HealthChecker, environment
from gateway.errors import ConfigError, NodeError, Reason
from gateway.node import Node
from gateway.replay import RedisReplayCache

pytestmark = pytest.mark.anyio

HANG = None  # an answer that never comes


class _Keyring:
    def __init__(self, signing: bool) -> None:
        self.signing = signing

    def active(self) -> object:
        if not self.signing:
            raise NodeError(Reason.SIGNING_UNAVAILABLE)
        return object()


class _Redis:
    """A Redis client whose PING answers ``answer``, raises it, or never answers."""

    def __init__(self, answer: bool | BaseException | None) -> None:
        self.answer = answer

    async def ping(self) -> bool:
        if isinstance(self.answer, BaseException):
            raise self.answer
        if self.answer is HANG:
            await asyncio.sleep(3600)
        return bool(self.answer)


class _Replay(RedisReplayCache):
    """A replay store in Redis that reports ``answer`` or never answers."""

    def __init__(self, answer: bool | None) -> None:
        self.answer = answer

    async def healthy(self) -> bool:
        if self.answer is HANG:
            await asyncio.sleep(3600)
        return bool(self.answer)


def _node(
    tmp_path: Path,
    *,
    log: bool = True,
    signing: bool = True,
    redis: _Redis | None = None,
    replay: object = None,
    maintenance: bool = False,
) -> Node:
    settings = SimpleNamespace(
        node_id="WB/GOV/SED/mediator-1",
        log=SimpleNamespace(store="sqlite", sqlite_path="messagelog.db"),
    )
    return cast(
        Node,
        SimpleNamespace(
            log=SimpleNamespace(available=log),
            keyring=_Keyring(signing),
            redis=redis,
            shared=SimpleNamespace(replay=replay),
            ops=SimpleNamespace(maintenance=SimpleNamespace(on=maintenance)),
            deployment=SimpleNamespace(
                config_dir=tmp_path / "config",
                settings=settings,
                path=lambda relative: tmp_path / "state" / relative,
            ),
        ),
    )


@pytest.fixture
def config_checks(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The config directories checked; the check passes unless told otherwise."""
    checked: list[Path] = []

    def check(config_dir: Path) -> list[ConfigError]:
        checked.append(config_dir)
        return []

    monkeypatch.setattr(health, "check_deployment", check)
    monkeypatch.setattr(health, "_REDIS_TIMEOUT_S", 0.01)
    return checked


async def _check(node: Node) -> dict[str, Any]:
    return await HealthChecker(0).check(node)


# -- the checks ------------------------------------------------------------------------


@pytest.mark.usefixtures("config_checks")
async def test_a_node_without_redis_is_ok_and_says_its_state_is_its_own(
    tmp_path: Path,
) -> None:
    assert await _check(_node(tmp_path)) == {
        "status": "ok",
        "checks": {"log": True, "signing_key": True, "config": True},
        "shared_state": "this node only",
    }


@pytest.mark.usefixtures("config_checks")
@pytest.mark.parametrize(
    ("log", "signing", "failed"),
    [(False, True, "log"), (True, False, "signing_key")],
)
async def test_a_failed_check_makes_the_node_unavailable(
    tmp_path: Path, log: bool, signing: bool, failed: str
) -> None:
    result = await _check(_node(tmp_path, log=log, signing=signing))

    assert result["status"] == "unavailable"
    assert [name for name, ok in result["checks"].items() if not ok] == [failed]


async def test_a_config_directory_that_fails_its_check_makes_the_node_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[Path] = []

    def check(config_dir: Path) -> list[ConfigError]:
        checked.append(config_dir)
        return [ConfigError("access.yaml", "not a list")]

    monkeypatch.setattr(health, "check_deployment", check)

    result = await _check(_node(tmp_path))

    assert (result["status"], result["checks"]["config"]) == ("unavailable", False)
    assert checked == [tmp_path / "config"]


@pytest.mark.usefixtures("config_checks")
@pytest.mark.parametrize("signing", [True, False])
async def test_maintenance_is_the_status_whatever_the_checks(
    tmp_path: Path, signing: bool
) -> None:
    result = await _check(_node(tmp_path, signing=signing, maintenance=True))

    assert result["status"] == "maintenance"


@pytest.mark.usefixtures("config_checks")
async def test_a_node_with_redis_checks_it_and_shares_its_state(
    tmp_path: Path,
) -> None:
    result = await _check(_node(tmp_path, redis=_Redis(True)))

    assert result["checks"]["redis"] is True
    assert (result["status"], result["shared_state"]) == ("ok", "redis")


@pytest.mark.usefixtures("config_checks")
@pytest.mark.parametrize(
    "answer",
    [False, RedisError("down"), ConnectionError("refused"), OSError("reset"), HANG],
    ids=["false", "redis error", "connection error", "os error", "no answer"],
)
async def test_redis_that_fails_or_does_not_answer_in_time_is_unavailable(
    tmp_path: Path, answer: bool | BaseException | None
) -> None:
    result = await _check(_node(tmp_path, redis=_Redis(answer)))

    assert (result["status"], result["checks"]["redis"]) == ("unavailable", False)


@pytest.mark.usefixtures("config_checks")
@pytest.mark.parametrize(
    ("answer", "status"),
    [(True, "ok"), (False, "unavailable"), (HANG, "unavailable")],
)
async def test_a_replay_store_in_redis_must_be_unable_to_evict(
    tmp_path: Path, answer: bool | None, status: str
) -> None:
    """It counts only when healthy, and in time."""
    result = await _check(_node(tmp_path, replay=_Replay(answer)))

    assert result["checks"]["replay_store"] is bool(answer)
    assert result["status"] == status


@pytest.mark.usefixtures("config_checks")
async def test_a_replay_store_kept_in_the_node_is_not_a_check(tmp_path: Path) -> None:
    result = await _check(_node(tmp_path, replay=object()))

    assert "replay_store" not in result["checks"]


# -- the cache -------------------------------------------------------------------------


async def test_a_result_is_reused_within_the_cache_time(
    tmp_path: Path, config_checks: list[Path]
) -> None:
    checker = HealthChecker(3600)
    node = _node(tmp_path)

    first = await checker.check(node)
    second = await checker.check(node)

    assert second is first
    assert len(config_checks) == 1


async def test_checks_run_again_once_the_cache_time_is_over(
    tmp_path: Path, config_checks: list[Path]
) -> None:
    checker = HealthChecker(0)
    node = _node(tmp_path)

    await checker.check(node)
    await checker.check(node)

    assert len(config_checks) == 2


async def test_probes_at_once_run_the_checks_once(
    tmp_path: Path, config_checks: list[Path]
) -> None:
    checker = HealthChecker(3600)
    node = _node(tmp_path)

    results = await asyncio.gather(*(checker.check(node) for _ in range(5)))

    assert all(r is results[0] for r in results)
    assert len(config_checks) == 1


# -- environment facts -----------------------------------------------------------------


def test_environment_facts_name_no_path(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "messagelog.db").write_bytes(b"x" * 1234)

    facts = environment(_node(tmp_path, maintenance=True))

    assert str(tmp_path) not in repr(facts)
    assert facts["node_id"] == "WB/GOV/SED/mediator-1"
    assert facts["maintenance"] is True
    assert facts["log_store"]["kind"] == "sqlite"
    assert facts["log_store"]["bytes"] == 1234


def test_a_log_store_not_yet_written_has_no_bytes(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()

    assert environment(_node(tmp_path))["log_store"]["bytes"] == 0


def test_a_library_that_is_not_installed_has_no_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "state").mkdir()
    monkeypatch.setattr(health, "_LIBRARIES", ("starlette", "no-such-distribution"))

    libraries = environment(_node(tmp_path))["libraries"]

    assert libraries["starlette"]
    assert libraries["no-such-distribution"] is None
