"""``mediator log``: verify, search and export the message log of a node.

Every subcommand reads the log node.yaml names (``log.store: postgres`` and its
DSN), else ``messagelog.db`` in the state directory. Where keys are needed it reads
``keyring/keyring.json`` there (public metadata only: every key that ever signed,
with revocation times), else ``keyring/jwks.json``, or ``--jwks FILE``. Verifying
and exporting need nothing else: no running node, no private key.

``archive`` moves the records of periods older than ``log.retention_days`` to
archive files and prunes them (see :mod:`gateway.msglog.archive`);
``archive-verify`` checks one such file offline.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gateway.cli import CliContext, pass_cli
from gateway.errors import ConfigError
from gateway.msglog import (
    EvidenceError,
    LogStore,
    PublicKey,
    SqliteLogStore,
    export_evidence,
    load_jwks,
    verify_evidence,
    verify_log,
)
from gateway.msglog.archive import ArchiveError, archive_log
from gateway.msglog.archivefile import verify_archive
from gateway.msglog.bodies import BodyKeyError
from gateway.msglog.store import StoreError
from gateway.msglog.stores import store_from_settings
from gateway.msglog.verify import VerifyReport, keys_from_keyring
from gateway.settings import LogSettings, NodeSettings
from gateway.subjects import SubjectHasher
from gateway.yamlconf import load_model

T = TypeVar("T")

#: What a running node may take beyond twice its checkpoint interval to seal.
_SEALING_SLACK_S = 60.0

_jwks_option = click.option(
    "--jwks",
    "jwks_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Public keys (JWKS); default: keyring/jwks.json in the state directory.",
)


@click.group(name="log")
def command() -> None:
    """Verify, search and export the tamper-evident message log."""


@command.command("verify")
@_jwks_option
@pass_cli
def verify(cli: CliContext, jwks_file: Path | None) -> None:
    """Check every record, the hash chain, the tree and the signed checkpoints.

    Exits 0 if the log is intact, 1 with the first problem otherwise. Records
    after the last checkpoint are counted; unsealed ones older than a running
    node would leave them (twice ``log.checkpoint_interval_s``, plus a minute)
    are a problem: their checkpoints are missing, or their node stopped
    without sealing them.
    """
    # rich is imported only where it draws, to keep every other command quick.
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
    )

    console = Console()
    keys, revoked_at = _verification_keys(cli, jwks_file)
    settings = _log_settings(cli)
    interval = (
        settings.checkpoint_interval_s
        if settings
        else LogSettings().checkpoint_interval_s
    )
    stale_before = time.time() - (2 * interval + _SEALING_SLACK_S)
    with Progress(
        TextColumn("verifying"), BarColumn(), MofNCompleteColumn(), console=console
    ) as bar:
        task = bar.add_task("records", total=None)

        async def run(store: LogStore) -> VerifyReport:
            bar.update(task, total=(await store.tail()).size)
            return await verify_log(
                store,
                keys,
                progress=lambda done: bar.update(task, completed=done),
                revoked_at=revoked_at,
                stale_before=stale_before,
            )

        report = _with_store(cli, run)

    checked = "" if report.ok else " checked before the problem below"
    console.print(f"records:     {report.records}{checked}")
    if report.archived:
        console.print(f"archived:    {report.archived} records, verified by hash only")
    console.print(f"checkpoints: {report.checkpoints}")
    console.print(
        f"signatures:  {report.signatures_verified} verified, "
        f"{report.consistency_verified} consistency proofs"
    )
    if report.unsealed_since is not None:
        console.print(
            f"unsealed:    {report.unsealed} records after the last checkpoint, "
            f"the oldest from {_iso(report.unsealed_since)}"
        )
    if report.ok:
        console.print("[green]intact[/green]")
        return
    console.print(f"[red]NOT INTACT[/red]: {report.problem}", highlight=False)
    raise SystemExit(1)


@command.command("export")
@click.option("--message-id", required=True, help="The exchange's X-Road-Id.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--officer-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="The security officer's X25519 private key (PEM): include the bodies.",
)
@_jwks_option
@pass_cli
def export(
    cli: CliContext,
    message_id: str,
    out: Path,
    officer_key: Path | None,
    jwks_file: Path | None,
) -> None:
    """Write an evidence bundle (zip) for one exchange, checkable offline."""
    jwks = _read_jwks(cli, jwks_file)
    private = None if officer_key is None else _officer_key(officer_key)

    async def run(store: LogStore) -> tuple[list[int], list[tuple[int, str]]]:
        archived = await store.archived_message(message_id)
        try:
            seqs = await export_evidence(
                store, message_id, jwks, out, officer_key=private
            )
        except EvidenceError as exc:
            if exc.log_reason == "evidence_not_found" and archived:
                return [], archived
            raise
        return seqs, archived

    try:
        seqs, archived = _with_store(cli, run)
    except (EvidenceError, BodyKeyError) as exc:
        out.unlink(missing_ok=True)
        raise click.ClickException(str(exc)) from exc
    where = "; ".join(f"seq {seq} in {name}" for seq, name in archived)
    if not seqs:
        raise click.ClickException(
            f"the records of this message id are archived: {where} "
            "(check the file with `mediator log archive-verify`)"
        )
    click.echo(f"wrote {out}: records {', '.join(map(str, seqs))}")
    if archived:
        click.echo(f"note: other records of this message id are archived: {where}")


@command.command("evidence-verify")
@click.argument("bundle", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--trusted-jwks",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="The node's published JWKS, obtained out of band: who may have signed.",
)
def evidence_verify(bundle: Path, trusted_jwks: Path | None) -> None:
    """Check an evidence bundle offline; exits 0 if it holds, 1 otherwise."""
    trusted = None
    if trusted_jwks is not None:
        try:
            trusted = load_jwks(orjson.loads(trusted_jwks.read_bytes()))
        except (OSError, ValueError, ConfigError) as exc:
            raise click.ClickException(f"{trusted_jwks}: not a usable JWKS") from exc
    report = verify_evidence(bundle, trusted)
    click.echo(f"message id:  {report.message_id}")
    click.echo(f"record seq:  {', '.join(map(str, report.records)) or '-'}")
    click.echo(f"checkpoint:  size {report.tree_size}, key {report.key_id}")
    if report.ok and not report.trusted:
        click.echo(
            "note:        signed by a key carried in the bundle; pass --trusted-jwks "
            "with the node's published keys to check which node signed it"
        )
    if report.ok:
        click.echo("valid")
        return
    for problem in report.problems or ["no records"]:
        click.echo(f"INVALID: {problem}")
    raise SystemExit(1)


@command.command("archive")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="The directory the archive files are written to.",
)
@click.option(
    "--before",
    help="ISO 8601 time or epoch seconds: only periods that end by then "
    "(and, if log.retention_days is set, are older than that too).",
)
@_jwks_option
@pass_cli
def archive(
    cli: CliContext, out_dir: Path, before: str | None, jwks_file: Path | None
) -> None:
    """Move the records of old periods to archive files, then prune them.

    A period (log.archive_period: a UTC month, or day) is archived once it ends
    before the cutoff and a checkpoint covers its records. Each file is synced and
    verified before its records leave the database; their hashes stay, so proofs
    and `log verify` still work.
    """
    settings = _log_settings(cli)
    cutoff = _cutoff(settings, _epoch(before, "--before"))
    keys, revoked_at = _verification_keys(cli, jwks_file)
    kind = settings.archive_period if settings is not None else "month"

    async def run(store: LogStore) -> Any:
        return await archive_log(
            store, out_dir, cutoff=cutoff, kind=kind, keys=keys, revoked_at=revoked_at
        )

    try:
        done = _with_store(cli, run)
    except ArchiveError as exc:
        raise click.ClickException(str(exc)) from exc
    for entry in done.made:
        click.echo(
            f"archived {entry.period}: seq {entry.first_seq}-{entry.end_seq - 1} "
            f"({entry.end_seq - entry.first_seq} records) to {out_dir / entry.name}, "
            f"sha256 {entry.sha256}"
        )
    click.echo(f"stopped: {done.stopped}")


@command.command("archive-verify")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--trusted-jwks",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="The node's published JWKS, obtained out of band: who may have signed.",
)
def archive_verify(file: Path, trusted_jwks: Path | None) -> None:
    """Check an archive file offline; exits 0 if it holds, 1 with the first problem."""
    trusted = None
    if trusted_jwks is not None:
        try:
            trusted = load_jwks(orjson.loads(trusted_jwks.read_bytes()))
        except (OSError, ValueError) as exc:
            raise click.ClickException(f"{trusted_jwks}: not a usable JWKS") from exc
    report = verify_archive(file, trusted)
    click.echo(f"period:      {report.period or '-'}")
    if report.first_seq is not None and report.end_seq is not None:
        click.echo(f"records:     seq {report.first_seq}-{report.end_seq - 1}")
    click.echo(f"checked:     {report.records} records")
    click.echo(f"checkpoint:  size {report.tree_size}, key {report.key_id}")
    if report.ok and not report.trusted:
        click.echo(
            "note:        signed by a key carried in the file; pass --trusted-jwks "
            "with the node's published keys to check which node signed it"
        )
    if report.ok:
        click.echo("valid")
        return
    click.echo(f"INVALID: {report.problem}")
    raise SystemExit(1)


def _cutoff(settings: LogSettings | None, before: float | None) -> float:
    """The end of the newest period that may be archived: the earlier of the two."""
    days = settings.retention_days if settings is not None else None
    limits = [time.time() - days * 86400.0] if days is not None else []
    if before is not None:
        limits.append(before)
    if not limits:
        raise click.ClickException(
            "retention is off: set log.retention_days in node.yaml or pass --before"
        )
    return min(limits)


def _officer_key(path: Path) -> X25519PrivateKey:
    """The officer's private key; a ClickException naming the file otherwise."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise click.ClickException(f"{path}: not an unencrypted PEM key") from exc
    if not isinstance(key, X25519PrivateKey):
        raise click.ClickException(f"{path}: an officer's key must be X25519")
    return key


def _open_store(cli: CliContext) -> LogStore:
    settings = _log_settings(cli)
    if settings is not None and settings.store == "postgres":
        try:
            return store_from_settings(settings, Path)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from exc
    path = cli.state_dir() / "messagelog.db"
    if not path.is_file():
        raise click.ClickException(f"no message log at {path}")
    return SqliteLogStore(path)


def _log_settings(cli: CliContext) -> LogSettings | None:
    """``log:`` of node.yaml, or None if there is no node.yaml."""
    path = cli.config_dir / "node.yaml"
    if not path.is_file():
        return None
    try:
        return load_model(path, NodeSettings).log
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def _subject_hasher(cli: CliContext) -> SubjectHasher:
    settings = _log_settings(cli)
    env = settings.subject_hash_key_env if settings else "MEDIATOR_SUBJECT_HASH_KEY"
    state = cli.state_dir()
    if not os.environ.get(env) and not (state / "subject-hash.key").is_file():
        raise click.ClickException(f"no subject hash key in {state} or ${env}")
    try:
        return SubjectHasher.from_state(state, env)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def _verification_keys(
    cli: CliContext, jwks_file: Path | None
) -> tuple[dict[str, PublicKey], dict[str, float]]:
    """The keys to check checkpoints with, and revocation times by key id."""
    metadata = cli.state_dir() / "keyring" / "keyring.json"
    if jwks_file is not None or not metadata.is_file():
        return load_jwks(_read_jwks(cli, jwks_file)), {}
    try:
        return keys_from_keyring(orjson.loads(metadata.read_bytes()), str(metadata))
    except (OSError, orjson.JSONDecodeError, ConfigError) as exc:
        raise click.ClickException(f"cannot read the keys in {metadata}") from exc


def _with_store(cli: CliContext, run: Callable[[LogStore], Awaitable[T]]) -> T:
    store = _open_store(cli)

    async def main() -> T:
        await store.open()
        try:
            return await run(store)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except StoreError as exc:
        # A damaged file, or one that is no database: a verdict, not a traceback.
        raise click.ClickException(
            f"the message log cannot be read (the store failed: {exc.operation})"
        ) from exc


def _read_jwks(cli: CliContext, jwks_file: Path | None) -> dict[str, Any]:
    path = jwks_file or cli.state_dir() / "keyring" / "jwks.json"
    try:
        value = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise click.ClickException(f"cannot read public keys from {path}") from exc
    if not isinstance(value, dict):
        raise click.ClickException(f"{path} is not a JWKS")
    return value


def _epoch(text: str | None, option: str) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise click.BadParameter("not an ISO 8601 time", param_hint=option) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
