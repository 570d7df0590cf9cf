"""The demo's security-officer stage: the log verified and counted, evidence checked.

Each test lays out the state directory of a stopped node with a log written
through the message log itself, and runs the stage as the demo does (the real
``mediator`` command in a child process).
"""

from __future__ import annotations

import asyncio
import sqlite3
import zipfile
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.demo.evidence import LogCheckError, export_and_verify, verify_whole_log
from gateway.demo.setup import DemoDeployment
from gateway.msglog import KeySigner, MessageLog, SqliteLogStore, public_jwk
from gateway.secrets import Secret
from tests.gateway.msglog.conftest import make_record, tamper

KANYASHREE = "WB/GOV/WCD/kanyashree"
IFMS = "WB/GOV/FIN/ifms"


def record(
    i: int, direction: str, *, client: str = KANYASHREE, decision: str = "forwarded"
) -> dict[str, Any]:
    """Record ``i`` of one exchange as the node writes it."""
    return {
        **make_record(i),
        "client_id": client,
        "decision": decision,
        "direction": direction,
        "status": 0 if direction == "request" else 200,
    }


FORWARDED = [record(1, "request"), record(1, "response")]
DENIED = [record(2, "exchange", decision="denied")]


def deployment(root: Path, records: list[dict[str, Any]]) -> DemoDeployment:
    """A stopped node's deployment whose sealed log holds ``records`` in order."""
    state = root / "state"
    (state / "keyring").mkdir(parents=True)
    key = Ed25519PrivateKey.generate()
    jwks = {"keys": [public_jwk("node-1", key.public_key())]}
    (state / "keyring" / "jwks.json").write_bytes(orjson.dumps(jwks))

    async def write() -> None:
        log = MessageLog(
            SqliteLogStore(state / "messagelog.db"),
            signer=KeySigner("node-1", key),
            checkpoint_interval_s=3600,
        )
        await log.start()
        for row in records:
            await log.append(row, flush=row["direction"] != "request")
        await log.checkpoint()
        await log.close()

    asyncio.run(write())
    return DemoDeployment(
        root=root,
        config_dir=root / "config",
        state_dir=state,
        registry_db=root / "registry.db",
        registry_key_file=root / "registry-key.pem",
        passphrase=Secret(b"unused"),
        registry_port=0,
        mediator_port=0,
        audience="https://mediator.shiksha.example",
    )


# -- the whole log ---------------------------------------------------------------------


def test_one_final_record_per_request_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A request record written before forwarding is not a final record."""
    demo = deployment(tmp_path, FORWARDED + DENIED)

    verify_whole_log(demo, expected_records=2)

    printed = " ".join(capsys.readouterr().out.split())  # unwrapped
    assert "intact" in printed
    assert "holds 3 records for 2 requests" in printed
    assert "1 request records written before forwarding" in printed


@pytest.mark.parametrize("requests", [1, 3])
def test_a_final_record_count_other_than_the_requests_fails(
    tmp_path: Path, requests: int
) -> None:
    demo = deployment(tmp_path, FORWARDED + DENIED)

    with pytest.raises(LogCheckError, match=f"^2 final records for {requests} "):
        verify_whole_log(demo, expected_records=requests)


def test_a_request_record_without_its_response_fails(tmp_path: Path) -> None:
    """A node that died after forwarding left an exchange without an answer."""
    demo = deployment(tmp_path, [record(1, "request"), *DENIED])

    with pytest.raises(LogCheckError, match=r"^1 request records without a response"):
        verify_whole_log(demo, expected_records=1)


def test_a_response_of_another_exchange_does_not_answer_a_request(
    tmp_path: Path,
) -> None:
    demo = deployment(tmp_path, [record(1, "request"), record(2, "response")])

    with pytest.raises(LogCheckError, match=r"^1 request records without a response"):
        verify_whole_log(demo, expected_records=1)


def test_a_log_that_does_not_verify_fails_with_the_commands_output(
    tmp_path: Path,
) -> None:
    """Someone with disk access turned the denied exchange into a forwarded one."""
    demo = deployment(tmp_path, FORWARDED + DENIED)
    denied = orjson.loads(_canonical(demo, 2))
    altered = orjson.dumps({**denied, "decision": "forwarded"})
    tamper(
        demo.state_dir / "messagelog.db",
        ("UPDATE records SET canonical = ? WHERE seq = 2", (altered,)),
    )

    with pytest.raises(LogCheckError, match=r"^mediator log verify failed") as caught:
        verify_whole_log(demo, expected_records=2)
    assert "NOT INTACT" in str(caught.value)


def _canonical(demo: DemoDeployment, seq: int) -> bytes:
    db = sqlite3.connect(demo.state_dir / "messagelog.db")
    try:
        (row,) = db.execute("SELECT canonical FROM records WHERE seq = ?", (seq,))
    finally:
        db.close()
    return bytes(row[0])


# -- evidence --------------------------------------------------------------------------


def test_a_forwarded_kanyashree_exchange_is_exported_and_verified(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    demo = deployment(tmp_path, DENIED + FORWARDED)

    export_and_verify(demo)

    bundle = demo.root / "evidence.zip"
    assert zipfile.is_zipfile(bundle)
    printed = " ".join(capsys.readouterr().out.split())  # unwrapped
    assert "evidence bundle evidence.zip for exchange msg-1:" in printed
    assert "record seq: 1, 2" in printed
    assert printed.endswith(" valid")


def test_only_a_forwarded_kanyashree_exchange_is_exported(tmp_path: Path) -> None:
    """A denied Kanyashree exchange or another client's does not count."""
    records = [
        record(1, "exchange", decision="denied"),
        record(2, "request", client=IFMS),
        record(2, "response", client=IFMS),
    ]
    demo = deployment(tmp_path, records)

    with pytest.raises(LogCheckError, match="no forwarded Kanyashree exchange"):
        export_and_verify(demo)
    assert not (demo.root / "evidence.zip").exists()
