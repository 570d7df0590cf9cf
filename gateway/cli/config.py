"""``mediator config check`` and ``mediator adapters test``: for integrators."""

from __future__ import annotations

import sys

import click

from gateway.cli import CliContext, pass_cli


@click.group("config")
def command() -> None:
    """Check a deployment's configuration."""


@command.command("check")
@pass_cli
def check(ctx: CliContext) -> None:
    """Validate every file of the deployment; list all problems with file and line."""
    from gateway.deployment import check_deployment

    errors = check_deployment(ctx.config_dir)
    for error in errors:
        click.echo(str(error))
    if errors:
        click.echo(f"{len(errors)} problem(s) in {ctx.config_dir}", err=True)
        sys.exit(1)
    click.echo(f"{ctx.config_dir}: configuration is valid")
