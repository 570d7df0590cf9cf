"""The security officer's part of the demo: verify the log, export and check evidence.

Both steps run the real CLI in a child process, as an officer would, against the
stopped node's state directory.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import orjson
from rich.console import Console

from gateway.demo.setup import DemoDeployment
from gateway.msglog.sqlite import SqliteLogStore
from gateway.msglog.store import SearchQuery

console = Console()


class LogCheckError(Exception):
    """The log or an evidence bundle did not verify."""


def verify_whole_log(demo: DemoDeployment, *, expected_records: int) -> None:
    """``mediator log verify``; then one final record for every request sent.

    ``expected_records`` is the number of requests. Each has exactly one final
    record (``exchange`` or ``response``), and every request record written
    before forwarding has the response record of its exchange.
    """
    output = _mediator(demo, "log", "verify")
    console.print(output.strip())
    final, forwarded, unanswered = asyncio.run(_count(demo))
    if final != expected_records:
        raise LogCheckError(f"{final} final records for {expected_records} requests")
    if unanswered:
        raise LogCheckError(f"{unanswered} request records without a response")
    console.print(
        f"message log holds {final + forwarded} records for {expected_records} "
        f"requests: one final record each, and {forwarded} request records "
        "written before forwarding"
    )


def export_and_verify(demo: DemoDeployment) -> None:
    """Export one forwarded Kanyashree exchange and verify the bundle offline."""
    message_id = asyncio.run(_one_forwarded(demo))
    bundle = demo.root / "evidence.zip"
    _mediator(demo, "log", "export", "--message-id", message_id, "--out", str(bundle))
    output = _mediator(demo, "log", "evidence-verify", str(bundle))
    console.print(f"evidence bundle {bundle.name} for exchange {message_id}:")
    console.print(output.strip())


def _mediator(demo: DemoDeployment, *args: str) -> str:
    argv = [
        str(Path(sys.executable).parent / "mediator"),
        "--config",
        str(demo.config_dir),
        "--state-dir",
        str(demo.state_dir),
        *args,
    ]
    done = subprocess.run(  # noqa: S603 (our own entry point)
        argv, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise LogCheckError(
            f"mediator {' '.join(args[:2])} failed: {done.stdout}{done.stderr}".strip()
        )
    return done.stdout


async def _count(demo: DemoDeployment) -> tuple[int, int, int]:
    """Final records, request records, and request records with no response."""
    store = SqliteLogStore(demo.state_dir / "messagelog.db")
    await store.open()
    final, requested, answered = 0, set(), set()
    try:
        async for chunk in store.iter_records():
            for row in chunk:
                record = orjson.loads(row.canonical)
                if record["direction"] == "request":
                    requested.add(record["message_id"])
                    continue
                final += 1
                if record["direction"] == "response":
                    answered.add(record["message_id"])
    finally:
        await store.close()
    return final, len(requested), len(requested - answered)


async def _one_forwarded(demo: DemoDeployment) -> str:
    store = SqliteLogStore(demo.state_dir / "messagelog.db")
    await store.open()
    try:
        found = await store.search(
            SearchQuery(
                client_id="WB/GOV/WCD/kanyashree", decision="forwarded", limit=1
            )
        )
    finally:
        await store.close()
    if not found:
        raise LogCheckError("no forwarded Kanyashree exchange in the log")
    return str(orjson.loads(found[0].canonical)["message_id"])
