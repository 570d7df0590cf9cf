"""Rotation on a schedule, reloads, the directory mode check, the audit trail."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from gateway import keyreader
from gateway.audit import AuditLog
from gateway.errors import ConfigError
from gateway.keyring import Keyring, KeyState
from gateway.keywatch import KeyringWatcher, announce
from gateway.secrets import Secret

PASS = Secret("correct horse battery staple")
T0 = 1796378400
RETAIN = 86_400


@pytest.fixture
def keyring(tmp_path: Path) -> Keyring:
    Keyring.init(tmp_path / "keyring", PASS, now=T0, actor="ops:alice")
    return Keyring.load(tmp_path / "keyring", PASS, retain_s=RETAIN)


def test_a_rotated_key_takes_over_by_itself_and_retires_the_old(
    keyring: Keyring,
) -> None:
    old = keyring.active(now=T0).kid
    new = keyring.rotate(activate_in_s=600, now=T0).kid

    states = keyring.public_keys(now=T0 + 600)

    assert keyring.active(now=T0 + 599).kid == old
    assert keyring.active(now=T0 + 600).kid == new
    assert states[old].state is KeyState.RETIRED
    assert states[old].retired_at == T0 + 600
    assert states[old].verify_until == T0 + 600 + RETAIN


def test_the_signer_is_worked_out_again_only_when_the_schedule_can_change(
    keyring: Keyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = keyring.active(now=T0).kid
    new = keyring.rotate(activate_in_s=600, now=T0).kid
    calls: list[int] = []
    real = keyreader.effective

    def counting(*args: Any) -> Any:
        calls.append(args[1])
        return real(*args)

    monkeypatch.setattr(keyreader, "effective", counting)

    signers = [keyring.active(now=T0 + s).kid for s in (1, 2, 599, 600, 601, 5)]

    assert signers == [old, old, old, new, new, old]
    assert calls == [T0 + 1, T0 + 600, T0 + 5]  # a clock set back is not trusted


def test_a_retired_key_verifies_until_its_date_then_leaves_the_jwks(
    keyring: Keyring,
) -> None:
    old_kid, signature = keyring.sign_checkpoint(b"cp")
    keyring.rotate(activate_in_s=0, now=T0)
    until = T0 + RETAIN

    assert keyring.verify(old_kid, b"cp", signature, now=until)
    assert not keyring.verify(old_kid, b"cp", signature, now=until + 1)
    assert old_kid in {k["kid"] for k in keyring.jwks(now=until)["keys"]}
    assert old_kid not in {k["kid"] for k in keyring.jwks(now=until + 1)["keys"]}


def test_the_next_change_writes_the_schedule_and_audits_it(keyring: Keyring) -> None:
    old = keyring.active(now=T0).kid
    first = keyring.rotate(activate_in_s=60, now=T0, actor="ops:alice")

    keyring.rotate(activate_in_s=60, now=T0 + 120, actor="ops:bob")
    records = json.loads((keyring.path / "keyring.json").read_text())["keys"]
    stored = {r["kid"]: r["state"] for r in records}
    actions = [(e.actor, e.action, e.target) for e in keyring.audit.entries()]

    assert stored[first.kid] == "active"
    assert stored[old] == "retired"
    assert ("keyring:schedule", "keys.activate", first.kid) in actions
    assert ("keyring:schedule", "keys.retire", old) in actions
    assert actions[0][:2] == ("ops:alice", "keys.init")
    assert actions[-1][:2] == ("ops:bob", "keys.rotate")
    assert keyring.audit.verify() == len(actions)


def test_another_holder_sees_a_change_after_reload(keyring: Keyring) -> None:
    other = Keyring.load(keyring.path, PASS)
    pending = keyring.rotate(activate_in_s=0, now=T0)

    assert other.reload()
    assert not other.reload()
    assert other.active(now=T0).kid == pending.kid


def test_a_failed_reload_keeps_the_keys(keyring: Keyring) -> None:
    before = keyring.active(now=T0).kid
    (keyring.path / "keyring.json").write_text("{broken")

    with pytest.raises(ConfigError, match="not a readable keyring"):
        keyring.reload()

    assert keyring.active(now=T0).kid == before


def test_a_group_writable_keyring_directory_is_refused(keyring: Keyring) -> None:
    keyring.path.chmod(0o770)

    with pytest.raises(ConfigError, match="group or world writable"):
        Keyring.load(keyring.path, PASS)


def test_changes_from_two_holders_are_not_lost(keyring: Keyring) -> None:
    other = Keyring.load(keyring.path, PASS)

    first = keyring.rotate(activate_in_s=3600, now=T0)
    second = other.rotate(activate_in_s=7200, now=T0)
    keys = Keyring.load(keyring.path, PASS).public_keys(now=T0)

    assert {first.kid, second.kid} <= keys.keys()


def test_the_audit_log_lives_beside_the_keyring(keyring: Keyring) -> None:
    assert keyring.audit.path == AuditLog.in_state_dir(keyring.path.parent).path


@pytest.mark.anyio
async def test_the_watcher_reloads_on_its_interval(keyring: Keyring) -> None:
    node_view = Keyring.load(keyring.path, PASS)
    watcher = KeyringWatcher(node_view, interval_s=0.05)
    await watcher.start()
    try:
        pending = keyring.rotate(activate_in_s=0)
        for _ in range(100):
            if node_view.key_id == pending.kid:
                break
            await asyncio.sleep(0.02)
    finally:
        await watcher.stop()

    assert node_view.key_id == pending.kid


@pytest.mark.anyio
@pytest.mark.redis
async def test_the_watcher_reloads_on_a_redis_notice(
    keyring: Keyring, redis_url: str
) -> None:
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url)
    node_view = Keyring.load(keyring.path, PASS)
    # An interval far longer than the test: only the notice can explain a switch.
    watcher = KeyringWatcher(
        node_view, interval_s=300, redis_client=client, channel="test:keyring"
    )
    await watcher.start()
    try:
        await asyncio.sleep(0.2)
        pending = keyring.rotate(activate_in_s=0)
        assert announce(redis_url, "test:keyring", keyring)
        for _ in range(100):
            if node_view.key_id == pending.kid:
                break
            await asyncio.sleep(0.02)
    finally:
        await watcher.stop()
        await client.aclose()

    assert node_view.key_id == pending.kid
