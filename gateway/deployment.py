"""One deployment, loaded from its config directory into frozen objects.

A deployment is what an integrator edits: ``node.yaml``, ``directory.yaml``,
``access.yaml``, ``purposes.yaml`` and ``adapters/`` (and ``admins.yaml``, which
:func:`check_deployment` checks too). :func:`load_deployment` stops at
the first error; :func:`check_deployment` collects every error, for
``mediator config check`` and for a reload (:func:`load_checked`). Besides each
file on its own it cross-checks them: every access right's client and service, and
every adapter's client and service, must be in the directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from adapters import AdapterSet
from gateway.directory import Directory
from gateway.errors import ConfigError, MediatorError
from gateway.identifiers import ClientId, ServiceId
from gateway.settings import NodeSettings
from gateway.yamlconf import all_errors, line_of, load_model, read_yaml
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


def check_workers(settings: NodeSettings, workers: int) -> None:
    """Refuse to run ``workers`` processes of one node on state they cannot share.

    Each process holds its own in-process replay cache and rate windows, so
    without Redis an assertion could be used once per process; and each would
    seal checkpoints of one SQLite log, where only a single writer seals. One
    process needs neither.

    :raises ConfigError: naming every setting the processes need.
    """
    if workers <= 1:
        return
    needs = []
    if not settings.redis.url:
        needs.append("redis.url (replay cache and rate limits shared by them)")
    if settings.log.store != "postgres":
        needs.append("log.store: postgres (one message log they all seal)")
    if needs:
        raise ConfigError(
            "node.yaml", f"{workers} worker processes need " + "; ".join(needs)
        )


class ReloadRefusedError(ConfigError):
    """A new configuration failed the check; ``errors`` holds every problem."""

    def __init__(self, config_dir: Path, errors: list[ConfigError]) -> None:
        super().__init__(
            str(config_dir), f"{len(errors)} problem(s); first: {errors[0]}"
        )
        self.errors = errors


def load_checked(config_dir: Path, state_dir: Path | None = None) -> Deployment:
    """Check every file, then load; raise ReloadRefusedError with all errors if any."""
    errors = check_deployment(config_dir)
    if errors:
        raise ReloadRefusedError(config_dir, errors)
    return load_deployment(config_dir, state_dir)


def check_deployment(config_dir: Path) -> list[ConfigError]:
    """Every problem of a deployment, each with its file and line."""
    directories: list[Directory] = []
    settings: list[NodeSettings] = []
    errors = all_errors(
        [
            (
                "node",
                lambda: settings.append(
                    load_model(config_dir / "node.yaml", NodeSettings)
                ),
            ),
            (
                "directory",
                lambda: directories.append(
                    Directory.load(config_dir / "directory.yaml")
                ),
            ),
        ]
    )
    errors.extend(check_config(config_dir))
    errors.extend(AdapterSet.check(config_dir / "adapters"))
    if directories:
        errors.extend(_cross_check(config_dir, directories[0]))
    if settings:
        errors.extend(_check_admins(config_dir / settings[0].admin.admins_file))
    return errors


def _check_admins(path: Path) -> list[ConfigError]:
    """The problem of the admins file, if any (a missing file names no admin)."""
    # gateway.admin imports this module (its reload endpoint): a top-level import
    # would be circular.
    from gateway.admin.auth import load_admins  # noqa: PLC0415

    return all_errors([("admins", lambda: load_admins(path))])


def _cross_check(config_dir: Path, directory: Directory) -> list[ConfigError]:
    """Clients and services named in access.yaml and adapters that are not listed."""
    errors: list[ConfigError] = []
    file = config_dir / "access.yaml"
    try:
        data = read_yaml(file)
    except ConfigError:
        return errors  # already reported by the policy check
    rights = data.get("rights") if isinstance(data, dict) else None
    for index, right in enumerate(rights if isinstance(rights, list) else []):
        if isinstance(right, dict):
            loc: list[str | int] = ["rights", index]
            errors.extend(_unknown_ids(file, data, loc, right, directory))
    for adapters_file in sorted((config_dir / "adapters").glob("*/adapter.yaml")):
        try:
            spec = read_yaml(adapters_file, expand_env=False)
        except ConfigError:
            continue  # already reported by the adapter check
        if isinstance(spec, dict):
            errors.extend(_unknown_ids(adapters_file, spec, [], spec, directory))
    return errors


def _unknown_ids(
    file: Path,
    document: object,
    loc: list[str | int],
    entry: dict[str, object],
    directory: Directory,
) -> list[ConfigError]:
    errors: list[ConfigError] = []
    client, service = _parsed(entry.get("client"), entry.get("service"))
    if client is not None and directory.subsystem(client) is None:
        line = line_of(document, [*loc, "client"])
        errors.append(
            ConfigError(
                str(file), f"client {client} is not in the directory", line=line
            )
        )
    if service is not None and directory.service(service) is None:
        line = line_of(document, [*loc, "service"])
        errors.append(
            ConfigError(
                str(file), f"service {service} is not in the directory", line=line
            )
        )
    return errors


def _parsed(
    client: object, service: object
) -> tuple[ClientId | None, ServiceId | None]:
    """The ids if they parse; a malformed one is reported by the file's own check."""
    parsed_client: ClientId | None = None
    parsed_service: ServiceId | None = None
    try:
        parsed_client = ClientId.parse(str(client)) if client is not None else None
    except MediatorError:
        parsed_client = None
    try:
        parsed_service = ServiceId.parse(str(service)) if service is not None else None
    except MediatorError:
        parsed_service = None
    return parsed_client, parsed_service


def _state_dir(config_dir: Path, settings: NodeSettings, override: Path | None) -> Path:
    if override is not None:
        return override
    from_env = os.environ.get("MEDIATOR_STATE_DIR")
    if from_env:
        return Path(from_env)
    path = Path(settings.state_dir)
    return path if path.is_absolute() else (config_dir / path).resolve()
