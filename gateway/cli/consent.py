"""``mediator consent``: grant, revoke, list and verify consent records.

The store is the one node.yaml chooses (``consent.db`` in the state directory by
default), and revisions are signed with the node's keyring; purposes come from
``purposes.yaml`` in the config directory. The operator sees student ids in the
tables printed here; nothing here writes them to a log.
"""

from __future__ import annotations

import getpass
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import anyio
import click

from gateway.cli import CliContext, pass_cli
from gateway.errors import ConfigError, MediatorError
from gateway.identifiers import ClientId
from gateway.keyring import Keyring
from gateway.secrets import read_passphrase
from gateway.settings import NodeSettings
from gateway.yamlconf import load_model
from policies.consent import (
    ConsentBackend,
    ConsentError,
    ConsentRecord,
    is_student_id,
    open_consent_store,
)
from policies.purposes import Purpose, PurposeSet

_T = TypeVar("_T")
DAY = 86400


@click.group("consent")
def command() -> None:
    """Consent records of students (and their guardians) for purposes."""


@command.command()
@click.option("--subject", required=True, help="The student id.")
@click.option("--client", "client_text", required=True, help="Client subsystem id.")
@click.option("--purpose", "purpose_id", required=True, help="Purpose id.")
@click.option("--guardian-name", help="Name of the guardian who grants.")
@click.option("--student-name", help="Name of an adult student who grants.")
@click.option("--minor/--adult", default=True, show_default=True)
@click.option("--days", type=click.IntRange(1, 3660), default=365, show_default=True)
@click.option("--actor", default=None, help="Who records it (default: the OS user).")
@pass_cli
def grant(
    cli: CliContext,
    *,
    subject: str,
    client_text: str,
    purpose_id: str,
    guardian_name: str | None,
    student_name: str | None,
    minor: bool,
    days: int,
    actor: str | None,
) -> None:
    """Record a consent; a minor's consent needs --guardian-name."""
    if guardian_name and student_name:
        raise click.UsageError("give --guardian-name or --student-name, not both")
    purpose = _purpose(cli, purpose_id)
    client = _client(cli, client_text)
    role, name = (
        ("guardian", guardian_name) if guardian_name else ("student", student_name)
    )
    now = time.time()

    async def run(store: ConsentBackend) -> ConsentRecord:
        return await store.grant(
            subject=subject,
            client=client,
            purpose=purpose,
            granted_by_role=role,
            granted_by_name=name or "",
            subject_is_minor=minor,
            valid_from=now,
            valid_until=now + days * DAY,
            actor=_actor(actor),
        )

    record = _with_store(cli, run)
    click.echo(f"granted {record.consent_id} until {_iso(record.valid_until)}")


@command.command()
@click.argument("consent_id")
@click.option("--actor", default=None, help="Who revokes (default: the OS user).")
@pass_cli
def revoke(cli: CliContext, consent_id: str, actor: str | None) -> None:
    """Revoke a consent; it stops covering exchanges at once."""

    async def run(store: ConsentBackend) -> ConsentRecord:
        return await store.revoke(consent_id, actor=_actor(actor))

    record = _with_store(cli, run)
    click.echo(f"revoked {record.consent_id} at {_iso(record.revoked_at or 0)}")


@command.command("list")
@click.option("--subject", required=True, help="The student id.")
@pass_cli
def list_(cli: CliContext, subject: str) -> None:
    """List the consents of one student."""
    if not is_student_id(subject):
        raise click.BadParameter("not a student id", param_hint="--subject")

    async def run(store: ConsentBackend) -> list[ConsentRecord]:
        return await store.list_for_subject(subject)

    records = _with_store(cli, run)
    if not records:
        click.echo("no consents")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("client", "purpose", "granted by", "from", "until", "state")
    table.add_column("consent id", min_width=36, no_wrap=True)
    for r in records:
        table.add_row(
            r.client,
            f"{r.purpose_id} v{r.purpose_version}",
            f"{r.granted_by.role}: {r.granted_by.name}",
            _iso(r.valid_from),
            _iso(r.valid_until),
            r.state,
            r.consent_id,
        )
    # Wide enough for a whole consent id, which the operator needs to revoke.
    Console(width=max(Console().width, 140)).print(table)


@command.command()
@click.argument("consent_id")
@pass_cli
def verify(cli: CliContext, consent_id: str) -> None:
    """Check a consent's revision hash chain; exit 1 if it does not verify."""

    async def run(store: ConsentBackend) -> bool | None:
        if await store.get(consent_id) is None and not await store.history(consent_id):
            return None
        return await store.verify_history(consent_id)

    verified = _with_store(cli, run)
    if verified is None:
        raise click.ClickException("no consent has this id")
    if not verified:
        raise click.ClickException(f"history of {consent_id} does NOT verify")
    click.echo(f"history of {consent_id} verifies")


def _with_store(
    cli: CliContext, action: Callable[[ConsentBackend], Awaitable[_T]]
) -> _T:
    """Run ``action`` on the store the node uses, signing with its keyring.

    The store is the one node.yaml chooses (SQLite in the state directory, or the
    shared PostgreSQL store). Revisions are signed with the node's keyring, as the
    node signs them, so the passphrase must be set as for ``mediator keys``.
    """

    async def main() -> _T:
        settings = load_model(cli.config_dir / "node.yaml", NodeSettings)
        state = cli.state_dir()
        keyring = Keyring.load(
            settings.resolve(state, settings.keyring.path),
            read_passphrase(settings.keyring.passphrase_env),
        )
        store = await open_consent_store(
            settings.consent_store.store,
            sqlite_path=settings.resolve(state, settings.consent_db),
            postgres_dsn=settings.consent_store.postgres_dsn,
            postgres_schema=settings.consent_store.postgres_schema,
            signer=keyring,
        )
        try:
            return await action(store)
        finally:
            await store.close()

    try:
        return anyio.run(main)
    except (ConsentError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from exc
    except MediatorError as exc:
        raise click.ClickException("the consent store cannot be used") from exc


def _purpose(cli: CliContext, purpose_id: str) -> Purpose:
    try:
        purposes = PurposeSet.load(cli.config_dir / "purposes.yaml")
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    purpose = purposes.get(purpose_id)
    if purpose is None:
        raise click.BadParameter(
            f"unknown purpose {purpose_id!r}", param_hint="--purpose"
        )
    return purpose


def _client(cli: CliContext, text: str) -> ClientId:
    """A subsystem of the directory, as the consent API requires."""
    from gateway.directory import Directory  # the other commands need no directory

    try:
        client = ClientId.parse(text)
    except MediatorError as exc:
        raise click.BadParameter("not a subsystem id", param_hint="--client") from exc
    try:
        directory = Directory.load(cli.config_dir / "directory.yaml")
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    if directory.subsystem(client) is None:
        raise click.BadParameter(
            "not a subsystem of directory.yaml", param_hint="--client"
        )
    return client


def _actor(actor: str | None) -> str:
    return actor or f"cli:{getpass.getuser()}"


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
