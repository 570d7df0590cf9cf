"""Which deployments several worker processes of one node can run."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.deployment import check_workers, load_deployment
from gateway.errors import ConfigError
from gateway.settings import NodeSettings

CONFIG = Path(__file__).resolve().parents[2] / "config"


def _settings(*, redis: bool, postgres: bool) -> NodeSettings:
    settings = load_deployment(CONFIG).settings
    return settings.model_copy(
        update={
            "redis": settings.redis.model_copy(
                update={"url": "redis://127.0.0.1:6379/0" if redis else None}
            ),
            "log": settings.log.model_copy(
                update={"store": "postgres" if postgres else "sqlite"}
            ),
        }
    )


def test_one_process_needs_nothing_shared() -> None:
    check_workers(_settings(redis=False, postgres=False), 1)


def test_workers_sharing_redis_and_a_postgres_log_may_run() -> None:
    check_workers(_settings(redis=True, postgres=True), 4)


@pytest.mark.parametrize(
    ("redis", "postgres", "missing"),
    [
        (False, True, ["redis.url"]),
        (True, False, ["log.store: postgres"]),
        (False, False, ["redis.url", "log.store: postgres"]),
    ],
)
def test_workers_without_shared_state_are_refused(
    redis: bool, postgres: bool, missing: list[str]
) -> None:
    with pytest.raises(ConfigError) as caught:
        check_workers(_settings(redis=redis, postgres=postgres), 2)

    assert caught.value.file == "node.yaml"
    assert "2 worker processes need" in caught.value.reason
    assert [
        need
        for need in ("redis.url", "log.store: postgres")
        if need in caught.value.reason
    ] == missing
