"""An HSM key as the node's signing key, for real against SoftHSM2.

The keyring records an ``hsm_label`` instead of writing a PEM file; the node signs
responses with the token's key and departmental clients verify them with the
published public key.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.hsm import HsmKey, HsmToken
from gateway.keyring import ECDSA_P256, ED25519, Keyring, KeyState, SigningKey
from gateway.node import Node
from gateway.secrets import Secret
from gateway.settings import HsmSettings
from tests.gateway.conftest import KANYASHREE, Harness
from tests.gateway.test_exchange import _girl, _grant, _verify, _verify_body

pytestmark = pytest.mark.hsm

PASS = Secret("correct horse battery staple")


@pytest.fixture
def token(softhsm: dict[str, str]) -> Iterator[HsmToken]:
    opened = HsmToken(softhsm["library"], softhsm["label"], Secret(softhsm["pin"]))
    yield opened
    opened.close()


@pytest.fixture
def keyring(tmp_path: Path, token: HsmToken) -> Keyring:
    return Keyring.init(tmp_path / "keyring", PASS, hsm=token)


def _record(keyring: Keyring, kid: str) -> dict[str, object]:
    document = json.loads((keyring.path / "keyring.json").read_text())
    (record,) = [r for r in document["keys"] if r["kid"] == kid]
    return dict(record)


def test_init_in_the_token_writes_a_label_and_no_pem(keyring: Keyring) -> None:
    key = keyring.active()

    assert isinstance(key, HsmKey)
    assert key.algorithm == ECDSA_P256
    assert _record(keyring, key.kid)["hsm_label"] == key.kid
    assert not list(keyring.path.glob("*.pem"))


def test_the_token_key_signs_and_the_keyring_verifies(keyring: Keyring) -> None:
    kid, signature = keyring.sign_checkpoint(b"size=3")

    assert keyring.verify(kid, b"size=3", signature)
    assert not keyring.verify(kid, b"size=4", signature)


def test_a_reloaded_keyring_finds_the_key_in_the_token(
    keyring: Keyring, softhsm: dict[str, str]
) -> None:
    other = HsmToken(softhsm["library"], softhsm["label"], Secret(softhsm["pin"]))
    try:
        loaded = Keyring.load(keyring.path, PASS, hsm=other)
        kid, signature = loaded.sign_checkpoint(b"x")
    finally:
        other.close()

    assert kid == keyring.active().kid
    assert keyring.verify(kid, b"x", signature)


def test_a_keyring_with_a_token_key_needs_the_token(keyring: Keyring) -> None:
    with pytest.raises(ConfigError, match=r"keyring\.hsm"):
        Keyring.load(keyring.path, PASS)


def test_rotation_moves_a_pem_keyring_into_the_token(
    tmp_path: Path, token: HsmToken
) -> None:
    keyring = Keyring.init(tmp_path / "keyring", PASS, hsm=None)
    keyring.hsm = token
    old = keyring.active()

    pending = keyring.rotate(activate_in_s=0, in_hsm=True)

    assert isinstance(old, SigningKey)
    assert pending.algorithm == ECDSA_P256
    assert pending.hsm_label == pending.kid
    assert isinstance(keyring.active(), HsmKey)
    assert keyring.public_keys()[old.kid].state is KeyState.RETIRED


@pytest.mark.parametrize(
    ("with_token", "algorithm", "message"),
    [
        (False, None, "no HSM token"),
        (True, ED25519, "must be ecdsa-p256"),
    ],
)
def test_a_token_key_is_refused_without_a_token_or_with_ed25519(
    tmp_path: Path,
    token: HsmToken,
    with_token: bool,
    algorithm: str | None,
    message: str,
) -> None:
    keyring = Keyring.init(tmp_path / "keyring", PASS)
    keyring.hsm = token if with_token else None

    with pytest.raises(ConfigError, match=message):
        keyring.rotate(activate_in_s=0, in_hsm=True, algorithm=algorithm)


def test_revoking_a_token_key_destroys_it_in_the_token(
    keyring: Keyring, token: HsmToken
) -> None:
    first = keyring.active().kid
    keyring.rotate(activate_in_s=0, in_hsm=True)

    keyring.revoke(first)

    with pytest.raises(ConfigError, match="not exactly one"):
        token.key(first, first)


def test_a_token_that_holds_another_key_is_refused(
    keyring: Keyring, token: HsmToken
) -> None:
    kid = keyring.active().kid
    token.destroy(kid)
    token.generate(kid)

    with pytest.raises(ConfigError, match="holds another key"):
        Keyring.load(keyring.path, PASS, hsm=token)


@pytest.mark.anyio
async def test_the_node_signs_responses_with_the_token_key(
    harness: Harness, token: HsmToken
) -> None:
    harness.node.keyring.hsm = token
    entry = harness.node.keyring.rotate(activate_in_s=0, in_hsm=True)
    student = _girl(harness)
    await _grant(harness, student["student_id"])
    client = harness.client(KANYASHREE)  # knows the node's keys after the rotation

    answer = await _verify(client, _verify_body(student))

    assert answer.status == 200
    assert answer.signature_ok
    (record,) = await harness.exchanges()
    assert record["response_signature_kid"] == entry.kid
    assert record["request_signature_kid"] == entry.kid


@pytest.mark.anyio
async def test_a_node_configured_with_keyring_hsm_opens_the_token(
    harness: Harness, token: HsmToken, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = harness.node.deployment
    keyring_dir = deployment.path(deployment.settings.keyring.path)
    setup = Keyring.load(keyring_dir, harness.demo.passphrase, hsm=token)
    entry = setup.rotate(activate_in_s=0, in_hsm=True)
    monkeypatch.setenv("TEST_HSM_PIN", "123456")
    hsm = HsmSettings(
        library=token.library, token_label=token.token_label, pin_env="TEST_HSM_PIN"
    )
    settings = deployment.settings.model_copy(
        update={
            "keyring": deployment.settings.keyring.model_copy(update={"hsm": hsm}),
            "log": deployment.settings.log.model_copy(
                update={"sqlite_path": "second-messagelog.db"}
            ),
            "consent_db": "second-consents.db",
        }
    )
    second = await Node.start(
        dataclasses.replace(deployment, settings=settings),
        http_client=harness.registry_http,
        passphrase=harness.demo.passphrase,
    )
    try:
        key = second.keyring.active()
    finally:
        await second.stop()

    assert isinstance(key, HsmKey)
    assert key.kid == entry.kid
