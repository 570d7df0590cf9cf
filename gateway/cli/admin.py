"""``mediator admin``: admin API keys and the admin audit log."""

from __future__ import annotations

import click

from gateway.cli import CliContext, pass_cli


@click.group("admin")
def command() -> None:
    """Admin API credentials and the admin audit log."""


@command.command("create-key")
@click.option(
    "--role",
    type=click.Choice(["ops", "security_officer", "integrator"]),
    required=True,
    help="What the key may do.",
)
@pass_cli
def create_key(cli: CliContext, role: str) -> None:
    """Create an API key; print it once. Only its SHA-256 is stored."""
    from gateway.admin.auth import Role, StoredKey, add_key
    from gateway.audit import AuditLog, default_actor
    from gateway.errors import ConfigError
    from gateway.settings import NodeSettings
    from gateway.yamlconf import load_model

    try:
        settings = load_model(cli.config_dir / "node.yaml", NodeSettings)
        state = cli.state_dir()
        audit = AuditLog.in_state_dir(state)

        def audited(record: StoredKey) -> None:
            audit.append(default_actor(), "admin_key.create", record.id, {"role": role})

        stored, key = add_key(
            settings.resolve(state, settings.admin.api_keys_file),
            Role(role),
            before_store=audited,
        )
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"key id: {stored.id} (role {role})", err=True)
    click.echo("Store this key now; it is not shown again:", err=True)
    click.echo(key)
