"""The benchmark's copies of the deployment's configuration."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from bench.topology import postgres_config
from gateway.settings import NodeSettings
from gateway.yamlconf import load_model

DSN = "postgresql://postgres@127.0.0.1:5432/mediator_bench_x"


def test_a_postgres_copy_moves_the_log_and_nothing_else(
    tmp_path: Path, monkeypatch: Any
) -> None:
    config = tmp_path / "config"
    shutil.copytree(Path("config"), config)
    world = SimpleNamespace(root=tmp_path, demo=SimpleNamespace(config_dir=config))
    monkeypatch.setenv("MEDIATOR_KEY_PASSPHRASE", "x")

    copy = postgres_config(cast(Any, world), "node-x", DSN)

    settings = load_model(copy / "node.yaml", NodeSettings)
    assert settings.log.store == "postgres"
    assert settings.log.postgres_dsn == DSN
    assert settings.consent_store.store == "sqlite"
