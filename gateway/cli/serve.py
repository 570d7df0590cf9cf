"""``mediator serve``: run one node on the configured address."""

from __future__ import annotations

import sys

import click

from gateway.cli import CliContext, pass_cli


@click.command("serve")
@click.option("--host", default=None, help="Listen address (default: node.yaml).")
@click.option(
    "--port", type=int, default=None, help="Listen port (default: node.yaml)."
)
@click.option("--log-level", default="info", show_default=True)
@pass_cli
def command(
    ctx: CliContext, host: str | None, port: int | None, log_level: str
) -> None:
    """Run the mediator node (uvicorn with uvloop, llhttp under the node's rules)."""
    import uvicorn

    from gateway.app import create_app
    from gateway.deployment import load_deployment
    from gateway.errors import ConfigError
    from gateway.observability import configure_logging
    from gateway.server import server_options

    configure_logging(log_level)
    try:
        deployment = load_deployment(ctx.config_dir, ctx.state_dir_override)
    except ConfigError as exc:
        click.echo(f"configuration error: {exc}", err=True)
        sys.exit(2)
    listen = deployment.settings.listen
    uvicorn.run(
        create_app(deployment, reload_on_sighup=True, freeze_gc=True),
        host=host or listen.host,
        port=port if port is not None else listen.port,
        lifespan="on",
        **server_options(),
    )
