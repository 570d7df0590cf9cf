"""``mediator log search``: the officer's view of matching records, as a table or
JSON Lines."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click
import orjson

from gateway.cli import CliContext, pass_cli
from gateway.cli.log import _epoch, _subject_hasher, _with_store
from gateway.msglog import LogStore, SearchQuery, officer
from gateway.msglog.records import DECISIONS

#: The width a table gets off a terminal: wider than any row, so none is cut.
_UNBOUNDED_WIDTH = 100_000


@click.command("search")
@click.option(
    "--client", "client_id", help="Client id, INSTANCE/CLASS/MEMBER/SUBSYSTEM."
)
@click.option("--service", "service_id", help="Service id.")
@click.option("--decision", type=click.Choice(sorted(DECISIONS)))
@click.option("--message-id")
@click.option(
    "--student",
    "student_id",
    help="Student id: searched as its keyed hash (the state directory's key).",
)
@click.option("--since", help="ISO 8601 time or epoch seconds (UTC if no zone).")
@click.option("--until", help="ISO 8601 time or epoch seconds, exclusive.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10000))
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object per line (JSON Lines): every field of each record.",
)
@pass_cli
def search(
    cli: CliContext,
    *,
    client_id: str | None,
    service_id: str | None,
    decision: str | None,
    message_id: str | None,
    student_id: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List matching records, newest first.

    The table shows the fields an officer reads first; it is cut to the width of a
    terminal, but written whole to a pipe or a file. With --json each record is
    one line, with every field the log keeps for it (digests of bodies, never the
    bodies or a token) and its seq; times are epoch seconds (UTC).
    """
    query = SearchQuery(
        client_id=client_id,
        service_id=service_id,
        decision=decision,
        message_id=message_id,
        since=_epoch(since, "--since"),
        until=_epoch(until, "--until"),
        limit=limit,
    )

    subjects = _subject_hasher(cli) if student_id is not None else None

    async def run(store: LogStore) -> list[dict[str, Any]]:
        return await officer.search(
            store, query, student_id=student_id, subjects=subjects
        )

    records = _with_store(cli, run)
    if as_json:
        for record in records:
            click.echo(orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode())
        return
    _print_table(records)


def _print_table(records: list[dict[str, Any]]) -> None:
    """The search results as a table, each row whole unless drawn on a terminal."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        # Scripts read a pipe or a file line by line: a value cut to 80 columns
        # (a message id, a client id) would be silently wrong there.
        console = Console(width=_UNBOUNDED_WIDTH)
    table = Table("seq", "time (UTC)", "message id", "record", "client", "service")
    table.add_column("decision")
    table.add_column("status")
    table.add_column("reason")
    for record in records:
        table.add_row(*_cells(record, record["seq"]))
    console.print(table)


def _cells(record: dict[str, Any], seq: int) -> list[str]:
    moment = datetime.fromtimestamp(float(record.get("ts", 0)), UTC)
    return [
        str(seq),
        moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
        str(record.get("message_id", "")),
        # request: logged before forwarding; response: how it ended; exchange:
        # the only record of one that never left the node.
        str(record.get("direction") or "-"),
        str(record.get("client_id") or "-"),
        str(record.get("service_id") or "-"),
        str(record.get("decision", "")),
        str(record.get("status") or "-"),
        str(record.get("reason") or ""),
    ]
