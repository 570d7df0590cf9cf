"""The node and the registry as real servers on loopback, driven over sockets."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.client import DepartmentClient
from gateway.demo.run import _processes
from gateway.demo.setup import prepare
from gateway.identifiers import ClientId, ServiceId
from gateway.settings import UpstreamSettings
from gateway.upstream import make_client
from tests.gateway.conftest import SABOOJSATHI

pytestmark = pytest.mark.sockets

STUDENTS = ServiceId(ClientId("WB", "GOV", "SED", "banglarshiksha"), "students")


def test_real_servers_answer_sign_and_log(
    tmp_path: Path, registry_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    demo = prepare(tmp_path / "deployment", registry_db=registry_db)
    for name, value in demo.environ().items():
        monkeypatch.setenv(name, value)

    async def traffic() -> list[int]:
        http = make_client(UpstreamSettings())
        client = DepartmentClient(
            client_id=SABOOJSATHI,
            key=demo.client_keys[SABOOJSATHI],
            audience=demo.audience,
            base_url=demo.mediator_url,
            http=http,
        )
        try:
            await client.load_node_keys()
            answers = [
                await client.call(
                    "GET", STUDENTS, "/roster/19999999999", purpose="saboojsathi-roster"
                ),
                await client.call("GET", STUDENTS, "/export"),
            ]
        finally:
            await http.aclose()
        assert all(a.signature_ok for a in answers)
        return [a.status for a in answers]

    with _processes(demo) as stop_mediator:
        statuses = asyncio.run(traffic())
        stop_mediator()

    assert statuses == [200, 403]
    verify = subprocess.run(
        [str(Path(sys.executable).parent / "mediator"), "log", "verify"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **demo.environ()},
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # A request and a response record for the answer, one for the refusal.
    assert "records:     3" in verify.stdout
