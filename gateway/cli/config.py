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


@click.group("adapters")
def adapters_command() -> None:
    """Work with the deployment's adapters."""


@adapters_command.command("test")
@pass_cli
def adapters_test(ctx: CliContext) -> None:
    """Run every adapter's examples, both directions; exit 1 if any fails."""
    from adapters import AdapterSet, run_examples
    from gateway.errors import ConfigError
    from gateway.yamlconf import problems

    try:
        adapters = AdapterSet.load(ctx.config_dir / "adapters")
    except ConfigError as exc:
        for problem in problems(exc):
            click.echo(f"configuration error: {problem}", err=True)
        sys.exit(2)
    results = run_examples(adapters)
    for result in results:
        mark = "ok  " if result.passed else "FAIL"
        detail = "" if result.passed else f": {result.detail}"
        click.echo(f"{mark} {result.adapter} / {result.example}{detail}")
    failed = sum(not r.passed for r in results)
    click.echo(f"{len(results) - failed} passed, {failed} failed")
    if failed:
        sys.exit(1)
