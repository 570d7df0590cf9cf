"""The keyring: files, modes, encryption, states, JWKS and checkpoint signing."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from gateway.directory import parse_jwks
from gateway.errors import ConfigError, NodeError, Reason
from gateway.keyring import ECDSA_P256, ED25519, Keyring, KeyState
from gateway.secrets import Secret

PASS = Secret("correct horse battery staple")
T0 = 1796378400


@pytest.fixture
def keyring(tmp_path: Path) -> Keyring:
    return Keyring.init(tmp_path / "keyring", PASS, now=T0)


def test_init_creates_one_active_key_with_safe_files(keyring: Keyring) -> None:
    key = keyring.active(now=T0)
    pem = keyring.path / f"{key.kid}.key.pem"

    assert key.algorithm == ED25519
    assert key.kid.startswith("mediator-20261204-")
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in pem.read_bytes()
    assert stat.S_IMODE((keyring.path / "keyring.json").stat().st_mode) == 0o600


def test_init_refuses_an_existing_keyring(keyring: Keyring) -> None:
    with pytest.raises(ConfigError, match="already exists"):
        Keyring.init(keyring.path, PASS)


def test_load_round_trips(keyring: Keyring) -> None:
    loaded = Keyring.load(keyring.path, PASS)

    assert loaded.active(now=T0).kid == keyring.active(now=T0).kid
    assert loaded.jwks() == keyring.jwks()


def test_load_with_wrong_passphrase_fails_without_echo(keyring: Keyring) -> None:
    with pytest.raises(ConfigError, match="cannot be decrypted") as info:
        Keyring.load(keyring.path, Secret("wrong guess"))

    assert "wrong guess" not in str(info.value)


def test_load_refuses_a_readable_private_key(keyring: Keyring) -> None:
    pem = keyring.path / f"{keyring.active(now=T0).kid}.key.pem"
    pem.chmod(0o644)

    with pytest.raises(ConfigError, match="mode 0600"):
        Keyring.load(keyring.path, PASS)


def test_load_refuses_a_kid_that_is_a_path(keyring: Keyring) -> None:
    metadata = keyring.path / "keyring.json"
    document = json.loads(metadata.read_text())
    document["keys"][0]["kid"] = "../../etc/passwd"
    metadata.write_text(json.dumps(document))

    with pytest.raises(ConfigError, match="unusable kid"):
        Keyring.load(keyring.path, PASS)


@pytest.mark.parametrize("algorithm", [ED25519, ECDSA_P256])
def test_checkpoint_signature_verifies(tmp_path: Path, algorithm: str) -> None:
    keyring = Keyring.init(tmp_path / "k", PASS, algorithm)

    kid, signature = keyring.sign_checkpoint(b"size=10 root=abc")

    assert keyring.verify(kid, b"size=10 root=abc", signature)
    assert not keyring.verify(kid, b"size=11 root=abc", signature)
    assert not keyring.verify("unknown", b"size=10 root=abc", signature)


def test_jwks_is_a_valid_public_key_set(tmp_path: Path) -> None:
    keyring = Keyring.init(tmp_path / "k", PASS, ECDSA_P256, now=T0)
    keyring.rotate(activate_in_s=60, algorithm=ED25519, now=T0)

    document = json.loads((keyring.path / "jwks.json").read_text())
    keys = parse_jwks(document, "jwks.json")

    assert {k.algorithm for k in keys.values()} == {"ES256", "EdDSA"}
    assert all("d" not in jwk for jwk in document["keys"])


def test_pending_key_is_published_before_it_signs(keyring: Keyring) -> None:
    old = keyring.active(now=T0).kid

    pending = keyring.rotate(activate_in_s=3600, now=T0)

    assert pending.state is KeyState.PENDING
    assert pending.kid in {jwk["kid"] for jwk in keyring.jwks()["keys"]}
    assert keyring.active(now=T0 + 3599).kid == old
    assert keyring.active(now=T0 + 3600).kid == pending.kid


def test_activate_retires_the_active_key_which_still_verifies(keyring: Keyring) -> None:
    old_kid, signature = keyring.sign_checkpoint(b"checkpoint")
    pending = keyring.rotate(activate_in_s=3600, now=T0)

    keyring.activate(pending.kid, now=T0 + 10)
    reloaded = Keyring.load(keyring.path, PASS)

    assert reloaded.active(now=T0 + 10).kid == pending.kid
    assert reloaded.public_keys()[old_kid].state is KeyState.RETIRED
    assert reloaded.verify(old_kid, b"checkpoint", signature)


def test_revoked_key_verifies_nothing_and_loses_its_file(keyring: Keyring) -> None:
    old_kid, signature = keyring.sign_checkpoint(b"checkpoint")
    pending = keyring.rotate(activate_in_s=0, now=T0)
    keyring.activate(pending.kid, now=T0)

    keyring.revoke(old_kid, now=T0 + 5)
    reloaded = Keyring.load(keyring.path, PASS)

    assert not reloaded.verify(old_kid, b"checkpoint", signature)
    assert old_kid not in {jwk["kid"] for jwk in reloaded.jwks()["keys"]}
    assert old_kid not in reloaded.registered_keys()
    assert not (keyring.path / f"{old_kid}.key.pem").exists()


def test_retiring_the_only_signing_key_is_refused(keyring: Keyring) -> None:
    with pytest.raises(ConfigError, match="only signing key"):
        keyring.retire(keyring.active(now=T0).kid, now=T0)


def test_no_signing_key_is_signing_unavailable(keyring: Keyring) -> None:
    keyring.revoke(keyring.active(now=T0).kid, now=T0)

    with pytest.raises(NodeError) as info:
        keyring.active(now=T0)

    assert info.value.reason is Reason.SIGNING_UNAVAILABLE


@pytest.mark.parametrize(
    ("operation", "state"),
    [("activate", KeyState.REVOKED), ("revoke", KeyState.REVOKED)],
)
def test_transitions_from_wrong_state_are_refused(
    keyring: Keyring, operation: str, state: KeyState
) -> None:
    kid = keyring.active(now=T0).kid
    if state is KeyState.REVOKED:
        keyring.revoke(kid, now=T0)

    with pytest.raises(ConfigError, match="not allowed"):
        getattr(keyring, operation)(kid)


def test_unknown_kid_is_refused(keyring: Keyring) -> None:
    with pytest.raises(ConfigError, match="no key"):
        keyring.revoke("mediator-20261204-00000000")


def test_registered_keys_verify_the_nodes_signatures(keyring: Keyring) -> None:
    key = keyring.active(now=T0)

    registered = keyring.registered_keys()[key.kid]

    assert registered.algorithm == "EdDSA"
    registered.key.verify(key.sign(b"x"), b"x")
