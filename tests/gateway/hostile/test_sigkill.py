"""The node killed with SIGKILL under load: every answered exchange is in the log."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from gateway.client import DepartmentClient
from gateway.demo.run import spawn_mediator, spawn_registry, stop, wait_ready
from gateway.demo.setup import prepare
from gateway.identifiers import ClientId, ServiceId
from gateway.settings import UpstreamSettings
from gateway.upstream import make_client
from tests.gateway.conftest import SABOOJSATHI

pytestmark = pytest.mark.sockets

STUDENTS = ServiceId(ClientId("WB", "GOV", "SED", "banglarshiksha"), "students")


async def _load_until_killed(
    client: DepartmentClient, node: subprocess.Popen[bytes], answered: list[str]
) -> None:
    """Eight callers in a loop; the node is killed after 150 answers."""

    async def caller() -> None:
        while node.poll() is None:
            try:
                answer = await client.call(
                    "GET", STUDENTS, "/roster/19999999999", purpose="saboojsathi-roster"
                )
            except Exception:  # noqa: BLE001 (the node is being killed: any failure)
                return
            if answer.status == 200:
                answered.append(answer.headers["x-road-id"])
            if len(answered) >= 150 and node.poll() is None:
                node.send_signal(signal.SIGKILL)

    await asyncio.gather(*(caller() for _ in range(8)))


def test_every_answered_exchange_survives_sigkill_and_the_log_verifies(
    tmp_path: Path, registry_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    demo = prepare(tmp_path / "deployment", registry_db=registry_db)
    for name, value in demo.environ().items():
        monkeypatch.setenv(name, value)
    (demo.root / "logs").mkdir()
    registry = spawn_registry(demo)
    node = spawn_mediator(demo)
    answered: list[str] = []
    try:
        wait_ready(f"{demo.registry_url}/api/openapi.json", registry, "registry")
        wait_ready(f"{demo.mediator_url}/admin/health", node, "mediator")

        async def run() -> None:
            http = make_client(UpstreamSettings(read_timeout_s=5))
            client = DepartmentClient(
                client_id=SABOOJSATHI,
                key=demo.client_keys[SABOOJSATHI],
                audience=demo.audience,
                base_url=demo.mediator_url,
                http=http,
            )
            try:
                await _load_until_killed(client, node, answered)
            finally:
                await http.aclose()

        asyncio.run(run())
        assert node.wait(timeout=10) == -signal.SIGKILL

        restarted = spawn_mediator(demo, "mediator-restarted.log")
        wait_ready(f"{demo.mediator_url}/admin/health", restarted, "mediator")
        stop(restarted, "mediator")
    finally:
        if node.poll() is None:
            node.kill()
        stop(registry, "registry")

    logged = _logged_message_ids(demo.state_dir / "messagelog.db")
    assert len(answered) >= 150
    assert set(answered) <= logged
    verify = subprocess.run(
        [str(Path(sys.executable).parent / "mediator"), "log", "verify"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **demo.environ()},
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def _logged_message_ids(path: Path) -> set[str]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT canonical FROM records").fetchall()
    finally:
        db.close()
    return {orjson.loads(row[0])["message_id"] for row in rows}
