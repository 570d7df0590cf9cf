"""``mediator serve``: run one node on the configured address."""

from __future__ import annotations

import os
import sys

import click

from gateway.cli import CliContext, pass_cli


@click.command("serve")
@click.option("--host", default=None, help="Listen address (default: node.yaml).")
@click.option(
    "--port", type=int, default=None, help="Listen port (default: node.yaml)."
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes serving the node; more than one needs redis.url and a "
    "PostgreSQL message log.",
)
@click.option("--log-level", default="info", show_default=True)
@pass_cli
def command(
    ctx: CliContext, host: str | None, port: int | None, workers: int, log_level: str
) -> None:
    """Run the mediator node (uvicorn with uvloop, llhttp under the node's rules).

    With one process, SIGHUP reloads the configuration. With ``--workers``, each
    process builds its own node from the same configuration, and SIGHUP restarts
    them one by one.
    """
    import uvicorn

    from gateway.app import create_app
    from gateway.deployment import check_workers, load_deployment
    from gateway.errors import ConfigError
    from gateway.observability import configure_logging
    from gateway.server import server_options

    configure_logging(log_level)
    try:
        deployment = load_deployment(ctx.config_dir, ctx.state_dir_override)
        check_workers(deployment.settings, workers)
    except ConfigError as exc:
        click.echo(f"configuration error: {exc}", err=True)
        sys.exit(2)
    listen = deployment.settings.listen
    options = {
        **server_options(),
        "host": host or listen.host,
        "port": port if port is not None else listen.port,
        "lifespan": "on",
    }
    if workers == 1:
        app = create_app(deployment, reload_on_sighup=True, freeze_gc=True)
        uvicorn.run(app, **options)
        return
    # Worker processes import the factory afresh and read these.
    os.environ["MEDIATOR_CONFIG"] = str(deployment.config_dir)
    os.environ["MEDIATOR_STATE_DIR"] = str(deployment.state_dir)
    os.environ["MEDIATOR_WORKERS"] = str(workers)
    os.environ["MEDIATOR_LOG_LEVEL"] = log_level
    uvicorn.run("gateway.app:app_from_env", factory=True, workers=workers, **options)
