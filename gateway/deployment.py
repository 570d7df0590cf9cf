"""One deployment, loaded from its config directory into frozen objects.

A deployment is what an integrator edits: ``node.yaml``, ``directory.yaml``,
``access.yaml``, ``purposes.yaml`` and ``adapters/``. :func:`load_deployment` stops at
the first error; :func:`check_deployment` collects every error, for
``mediator config check``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from adapters import AdapterSet
from gateway.directory import Directory
from gateway.errors import ConfigError
from gateway.settings import NodeSettings
from gateway.yamlconf import load_model
from policies import Policies, check_config, load_policies


@dataclass(frozen=True)
class Deployment:
    config_dir: Path
    state_dir: Path
    settings: NodeSettings
    directory: Directory
    policies: Policies
    adapters: AdapterSet

    def path(self, relative: str) -> Path:
        """A path from node.yaml, relative ones under the state directory."""
        return self.settings.resolve(self.state_dir, relative)


def load_deployment(config_dir: Path, state_dir: Path | None = None) -> Deployment:
    """Load every file of a deployment; raise ConfigError at the first problem."""
    settings = load_model(config_dir / "node.yaml", NodeSettings)
    return Deployment(
        config_dir=config_dir,
        state_dir=_state_dir(config_dir, settings, state_dir),
        settings=settings,
        directory=Directory.load(config_dir / "directory.yaml"),
        policies=load_policies(config_dir),
        adapters=AdapterSet.load(config_dir / "adapters"),
    )


def check_deployment(config_dir: Path) -> list[ConfigError]:
    """Every problem of a deployment, each with its file and line."""
    errors: list[ConfigError] = []
    for check in (
        lambda: load_model(config_dir / "node.yaml", NodeSettings),
        lambda: Directory.load(config_dir / "directory.yaml"),
    ):
        try:
            check()
        except ConfigError as exc:
            errors.append(exc)
    errors.extend(check_config(config_dir))
    errors.extend(AdapterSet.check(config_dir / "adapters"))
    return errors


def _state_dir(config_dir: Path, settings: NodeSettings, override: Path | None) -> Path:
    if override is not None:
        return override
    from_env = os.environ.get("MEDIATOR_STATE_DIR")
    if from_env:
        return Path(from_env)
    path = Path(settings.state_dir)
    return path if path.is_absolute() else (config_dir / path).resolve()
