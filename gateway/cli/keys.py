"""``mediator keys``: create, list, publish and rotate the node's signing keys.

The keyring lives in ``STATE_DIR/keyring`` (``keyring.path`` of node.yaml). Its
passphrase comes from ``$MEDIATOR_KEY_PASSPHRASE`` or from ``--passphrase-file``
(mode 0600). Nothing here ever prints private key material or the passphrase.

With ``keyring.hsm`` in node.yaml, ``init --hsm`` and ``rotate --hsm`` generate the
key pair in the PKCS#11 token (ECDSA P-256, never extractable; PIN from
``keyring.hsm.pin_env`` or ``pin_file``); every command that opens the keyring
then opens the token too.

Every change is written to the admin audit log with ``--actor`` (default
``$MEDIATOR_ACTOR``, else the operating-system user) and announced to every node
on the Redis channel of node.yaml, when Redis is configured; nodes without the
notice see it at their next periodic re-read.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Column, Table

from gateway.audit import default_actor
from gateway.cli import CliContext, pass_cli
from gateway.errors import ConfigError, MediatorError
from gateway.hsm import HsmToken
from gateway.keyring import ECDSA_P256, ED25519, Keyring, PublicKeyEntry
from gateway.keywatch import announce
from gateway.secrets import Secret, read_passphrase
from gateway.settings import NodeSettings
from gateway.yamlconf import load_model

KEY_ENV_VARIABLE = "MEDIATOR_KEY_PASSPHRASE"
_COLUMNS = ("algorithm", "state", "created", "activates", "retired", "revoked")
_ALGORITHMS = {"ed25519": ED25519, "ecdsa-p256": ECDSA_P256}

F = TypeVar("F", bound=Callable[..., Any])


def _passphrase_option(command: F) -> F:
    return click.option(
        "--passphrase-file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help=f"File with the keyring passphrase (else ${KEY_ENV_VARIABLE}).",
    )(command)


def _friendly_errors(command: F) -> F:
    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from exc
        except MediatorError as exc:
            raise click.ClickException(exc.log_reason) from exc

    return wrapper  # type: ignore[return-value]


def _settings(cli: CliContext) -> NodeSettings | None:
    file = cli.config_dir / "node.yaml"
    return load_model(file, NodeSettings) if file.exists() else None


def _keyring_dir(cli: CliContext) -> Path:
    settings = _settings(cli)
    relative = settings.keyring.path if settings else "keyring"
    path = Path(relative)
    return path if path.is_absolute() else cli.state_dir() / path


def _actor(value: str | None) -> str:
    return value or os.environ.get("MEDIATOR_ACTOR") or default_actor()


def _announce(cli: CliContext, keyring: Keyring) -> None:
    settings = _settings(cli)
    if settings is None or not settings.redis.url:
        return
    if announce(settings.redis.url, settings.keyring.notify_channel, keyring):
        click.echo("announced to the nodes")
    else:
        click.echo("could not announce; nodes see it at their next re-read")


def _passphrase(file: Path | None) -> Secret:
    return read_passphrase(KEY_ENV_VARIABLE, file)


def _token(cli: CliContext, required: bool = False) -> HsmToken | None:
    """The token of node.yaml's ``keyring.hsm``, or None if there is none.

    :raises ConfigError: ``required`` and no token is configured.
    """
    settings = _settings(cli)
    if settings is None or settings.keyring.hsm is None:
        if required:
            raise ConfigError(
                str(cli.config_dir / "node.yaml"), "--hsm needs keyring.hsm configured"
            )
        return None

    def resolve(relative: str) -> Path:
        return settings.resolve(cli.state_dir(), relative)

    return HsmToken.from_settings(settings.keyring.hsm, resolve)


def _open(cli: CliContext, file: Path | None) -> Keyring:
    settings = _settings(cli)
    days = settings.keyring.retired_verify_days if settings else 400
    return Keyring.load(
        _keyring_dir(cli),
        _passphrase(file),
        retain_s=days * 86_400,
        hsm=_token(cli),
    )


def _hsm_option(command: F) -> F:
    return click.option(
        "--hsm",
        is_flag=True,
        default=False,
        help="Generate the key pair in the PKCS#11 token of keyring.hsm "
        "(ECDSA P-256, not extractable).",
    )(command)


def _actor_option(command: F) -> F:
    return click.option(
        "--actor",
        default=None,
        help="Who makes the change, for the audit log (else $MEDIATOR_ACTOR or user).",
    )(command)


def _time(value: int | None) -> str:
    if value is None:
        return "-"
    moment = datetime.datetime.fromtimestamp(value, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _describe(entry: PublicKeyEntry) -> str:
    return f"{entry.kid} ({entry.algorithm}, {entry.state})"


@click.group("keys")
def command() -> None:
    """The node's signing keys: pending, active, retired and revoked."""


@command.command("init")
@click.option(
    "--algorithm",
    type=click.Choice(sorted(_ALGORITHMS)),
    default=None,
    help="ed25519 by default; ecdsa-p256 with --hsm.",
)
@_hsm_option
@_passphrase_option
@_actor_option
@pass_cli
@_friendly_errors
def init(
    cli: CliContext,
    *,
    algorithm: str | None,
    hsm: bool,
    passphrase_file: Path | None,
    actor: str | None,
) -> None:
    """Create the keyring with one active key."""
    token = _token(cli, required=True) if hsm else None
    default = "ecdsa-p256" if hsm else "ed25519"
    keyring = Keyring.init(
        _keyring_dir(cli),
        _passphrase(passphrase_file),
        _ALGORITHMS[algorithm or default],
        actor=_actor(actor),
        hsm=token,
    )
    key = keyring.active()
    keyring.close()
    click.echo(f"created keyring {keyring.path} with active key {key.kid}")


@command.command("list")
@_passphrase_option
@pass_cli
@_friendly_errors
def list_keys(cli: CliContext, passphrase_file: Path | None) -> None:
    """List every key with its state and times."""
    keyring = _open(cli, passphrase_file)
    table = Table(
        Column("kid", no_wrap=True),
        *(Column(name, no_wrap=True) for name in _COLUMNS),
    )
    for entry in sorted(keyring.public_keys().values(), key=lambda e: e.created_at):
        table.add_row(
            entry.kid,
            entry.algorithm,
            entry.state.value,
            _time(entry.created_at),
            _time(entry.activate_at),
            _time(entry.retired_at),
            _time(entry.revoked_at),
        )
    Console(width=160).print(table)


@command.command("export-public")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None)
@_passphrase_option
@pass_cli
@_friendly_errors
def export_public(
    cli: CliContext, out: Path | None, passphrase_file: Path | None
) -> None:
    """Write the public JWKS (pending, active, retired keys) to stdout or --out."""
    text = json.dumps(_open(cli, passphrase_file).jwks(), indent=2, sort_keys=True)
    if out is None:
        click.echo(text)
        return
    out.write_text(text + "\n", encoding="utf-8")
    click.echo(f"wrote {out}")


@command.command("rotate")
@click.option(
    "--activate-in",
    "activate_in_s",
    type=click.IntRange(min=0),
    default=None,
    help="Seconds the new key stays pending (published, not signing); default "
    "keyring.lead_time_s of node.yaml (600).",
)
@click.option("--algorithm", type=click.Choice(sorted(_ALGORITHMS)), default=None)
@_hsm_option
@_passphrase_option
@_actor_option
@pass_cli
@_friendly_errors
def rotate(
    cli: CliContext,
    *,
    activate_in_s: int | None,
    algorithm: str | None,
    hsm: bool,
    passphrase_file: Path | None,
    actor: str | None,
) -> None:
    """Create a pending key that starts signing after the lead time.

    The key signing now is retired at that moment and keeps verifying.
    """
    if hsm:
        _token(cli, required=True)
    keyring = _open(cli, passphrase_file)
    settings = _settings(cli)
    if activate_in_s is None:
        activate_in_s = settings.keyring.lead_time_s if settings else 600
    chosen = _ALGORITHMS[algorithm] if algorithm else None
    entry = keyring.rotate(
        activate_in_s=activate_in_s, algorithm=chosen, actor=_actor(actor), in_hsm=hsm
    )
    keyring.close()
    click.echo(
        f"new pending key {_describe(entry)}; signs from {_time(entry.activate_at)}"
    )
    _announce(cli, keyring)


def _transition(name: str, help_text: str) -> None:
    @command.command(name, help=help_text)
    @click.argument("kid")
    @_passphrase_option
    @_actor_option
    @pass_cli
    @_friendly_errors
    def run(
        cli: CliContext, kid: str, passphrase_file: Path | None, actor: str | None
    ) -> None:
        keyring = _open(cli, passphrase_file)
        entry = getattr(keyring, name)(kid, actor=_actor(actor))
        click.echo(f"key {_describe(entry)}")
        _announce(cli, keyring)


_transition("activate", "Make a pending key active now; the active key is retired.")
_transition("retire", "Stop a key from signing; it still verifies.")
_transition("revoke", "Withdraw a key: unpublished, verifies nothing, file deleted.")
