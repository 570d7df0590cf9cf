"""The ``mediator`` command: one group, with a subcommand module per concern.

Every subcommand finds its deployment through the same two options: ``--config``
(the directory with ``node.yaml``) and ``--state-dir`` (where keys, the message log
and the consent store live).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import click

from gateway.errors import ConfigError


@dataclass(frozen=True)
class CliContext:
    config_dir: Path
    state_dir_override: Path | None

    def state_dir(self) -> Path:
        """The state directory: the override, else ``state_dir`` of node.yaml."""
        if self.state_dir_override is not None:
            return self.state_dir_override
        from gateway.settings import NodeSettings
        from gateway.yamlconf import load_model

        settings = load_model(self.config_dir / "node.yaml", NodeSettings)
        path = Path(settings.state_dir)
        return path if path.is_absolute() else (self.config_dir / path).resolve()


pass_cli = click.make_pass_decorator(CliContext)


class _Commands(click.Group):
    """The command group; a deployment file that is not valid ends any command with
    one line naming the file and line, never a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            raise click.ClickException(f"configuration error: {exc}") from exc


@click.group(cls=_Commands)
@click.option(
    "--config",
    "config_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=lambda: os.environ.get("MEDIATOR_CONFIG", "config"),
    show_default="config, or $MEDIATOR_CONFIG",
    help="Deployment directory with node.yaml.",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=lambda: os.environ.get("MEDIATOR_STATE_DIR"),
    help="Where keys, the message log and consents live (overrides node.yaml).",
)
@click.pass_context
def main(ctx: click.Context, config_dir: Path, state_dir: Path | None) -> None:
    """Shiksha Mediator: the information mediator of the school registry."""
    ctx.obj = CliContext(config_dir, state_dir)


def _register() -> None:
    from gateway.cli import (
        admin,
        clients,
        config,
        consent,
        demo,
        keys,
        log,
        logsearch,
        serve,
    )

    for module in (serve, keys, clients, log, config, consent, demo, admin):
        main.add_command(module.command)
    main.add_command(config.adapters_command)
    log.command.add_command(logsearch.search)


_register()
