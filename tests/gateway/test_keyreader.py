"""A keyring directory loaded for use: the signer, the keys that verify, reloads."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any, cast

import pytest

from gateway import keyfiles
from gateway.errors import ConfigError, NodeError, Reason
from gateway.hsm import HsmToken
from gateway.keyfiles import ECDSA_P256, ED25519, PrivateKey
from gateway.keyreader import METADATA, KeyringReader, by_creation, whole_seconds
from gateway.keytypes import KeyState, PublicKeyEntry, to_record
from gateway.secrets import Secret

PASS = Secret("correct horse battery staple")
T0 = 1796378400
RETAIN = 86_400


class Keys:
    """A keyring directory written by hand, so every state can be set up."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.private: dict[str, PrivateKey] = {}
        self.entries: list[PublicKeyEntry] = []
        path.mkdir(mode=0o700)

    def add(
        self, kid: str, state: KeyState, created: int = T0, **times: Any
    ) -> PrivateKey:
        key = keyfiles.new_private_key(ED25519, "test")
        self.private[kid] = key
        self.entries.append(
            PublicKeyEntry(kid, ED25519, key.public_key(), state, created, **times)
        )
        if state is not KeyState.REVOKED:
            keyfiles.write_private(self.path, kid, key, PASS)
        return key

    def save(self) -> bytes:
        data = keyfiles.dump({"keys": [to_record(e) for e in self.entries]})
        keyfiles.write_atomic(self.path / METADATA, data, 0o600)
        return data

    def load(self) -> KeyringReader:
        self.save()
        return KeyringReader.load(self.path, PASS, retain_s=RETAIN)


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return Keys(tmp_path / "keyring")


def signature_of(key: PrivateKey, data: bytes) -> bytes:
    return key.sign(data)  # type: ignore[call-arg]  # Ed25519 takes data only


def kids(jwks: dict[str, Any]) -> list[str]:
    return [jwk["kid"] for jwk in jwks["keys"]]


# -- loading -------------------------------------------------------------------------


def test_the_version_is_the_hash_of_keyring_json(keys: Keys) -> None:
    keys.add("k1", KeyState.ACTIVE, activate_at=T0)
    data = keys.save()

    reader = KeyringReader.load(keys.path, PASS)

    assert reader.version == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("content", [None, b"{broken", b"\xff\xfe"])
def test_a_missing_or_unreadable_keyring_json_is_refused(
    keys: Keys, content: bytes | None
) -> None:
    if content is not None:
        (keys.path / METADATA).write_bytes(content)

    with pytest.raises(ConfigError, match="not a readable keyring"):
        KeyringReader.load(keys.path, PASS)


def test_a_revoked_key_needs_no_private_key_file(keys: Keys) -> None:
    keys.add("gone", KeyState.REVOKED, revoked_at=T0)
    keys.add("k1", KeyState.ACTIVE, activate_at=T0)

    reader = keys.load()

    assert reader.active(now=T0).kid == "k1"
    assert list(keys.path.glob("*.pem")) == [keys.path / "k1.key.pem"]


def test_a_key_in_an_hsm_needs_a_token(keys: Keys) -> None:
    key = keyfiles.new_private_key(ECDSA_P256, "test")
    keys.entries.append(
        PublicKeyEntry(
            "k1", ECDSA_P256, key.public_key(), KeyState.ACTIVE, T0, hsm_label="k1"
        )
    )

    with pytest.raises(ConfigError, match=r"configure keyring\.hsm"):
        keys.load()


# -- reloading -----------------------------------------------------------------------


def test_a_reload_of_the_same_bytes_changes_nothing(keys: Keys) -> None:
    keys.add("k1", KeyState.ACTIVE, activate_at=T0)
    reader = keys.load()
    version = reader.version
    keys.save()

    assert not reader.reload()
    assert reader.version == version


def test_a_reload_of_a_changed_keyring_adopts_its_keys(keys: Keys) -> None:
    keys.add("k1", KeyState.ACTIVE, activate_at=T0)
    reader = keys.load()
    keys.add("k2", KeyState.PENDING, activate_at=T0 + 60)
    keys.save()

    assert reader.reload()
    assert reader.active(now=T0 + 60).kid == "k2"


def test_a_reload_decrypts_only_the_keys_it_has_not_loaded(
    keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys.add("k1", KeyState.ACTIVE, activate_at=T0)
    reader = keys.load()
    keys.add("k2", KeyState.PENDING, activate_at=T0 + 60)
    keys.save()
    read: list[str] = []
    real = keyfiles.read_private

    def counting(path: Path, kid: str, *args: Any) -> PrivateKey:
        read.append(kid)
        return real(path, kid, *args)

    monkeypatch.setattr(keyfiles, "read_private", counting)

    reader.reload()

    assert read == ["k2"]


def test_a_failed_reload_keeps_the_keys_and_the_version(keys: Keys) -> None:
    keys.add("k1", KeyState.ACTIVE, activate_at=T0)
    reader = keys.load()
    version = reader.version
    keys.add("k2", KeyState.ACTIVE, activate_at=T0 + 1)
    (keys.path / "k2.key.pem").chmod(0o644)
    keys.save()

    with pytest.raises(ConfigError, match="mode 0600"):
        reader.reload()

    assert reader.version == version
    assert reader.active(now=T0 + 1).kid == "k1"


# -- using keys ----------------------------------------------------------------------


def test_without_a_key_that_may_sign_signing_is_unavailable(keys: Keys) -> None:
    keys.add("k1", KeyState.PENDING, activate_at=T0 + 60)
    reader = keys.load()

    with pytest.raises(NodeError) as caught:
        reader.active(now=T0 + 59)

    assert caught.value.reason is Reason.SIGNING_UNAVAILABLE
    assert caught.value.log_reason == "no_active_key"


def test_the_key_id_is_empty_when_no_key_may_sign(keys: Keys) -> None:
    keys.add("k1", KeyState.PENDING)

    assert keys.load().key_id == ""


def test_a_checkpoint_is_signed_by_the_active_key(keys: Keys) -> None:
    keys.add("k1", KeyState.RETIRED, activate_at=T0 - 10, verify_until=T0 + 10)
    keys.add("k2", KeyState.ACTIVE, activate_at=T0)
    reader = keys.load()

    kid, signature = reader.sign_checkpoint(b"size=10 root=abc")

    assert kid == "k2"
    assert reader.verify("k2", b"size=10 root=abc", signature, now=T0)


@pytest.mark.parametrize(
    ("kid", "at", "verifies"),
    [
        ("active", T0, True),
        ("retired", T0 + 100, True),
        ("retired", T0 + 101, False),
        ("revoked", T0, False),
        ("unknown", T0, False),
    ],
)
def test_a_signature_verifies_only_by_a_key_that_verifies_then(
    keys: Keys, kid: str, at: int, verifies: bool
) -> None:
    keys.add("active", KeyState.ACTIVE, activate_at=T0)
    keys.add("retired", KeyState.RETIRED, retired_at=T0, verify_until=T0 + 100)
    keys.add("revoked", KeyState.REVOKED, revoked_at=T0)
    reader = keys.load()
    signer = keys.private.get(kid, keys.private["active"])

    signature = signature_of(signer, b"checkpoint")

    assert reader.verify(kid, b"checkpoint", signature, now=at) is verifies


def test_the_jwks_lists_the_keys_that_verify_oldest_first(keys: Keys) -> None:
    keys.add("pending", KeyState.PENDING, created=T0 + 20, activate_at=T0 + 600)
    keys.add("b-active", KeyState.ACTIVE, created=T0 + 10, activate_at=T0 + 10)
    keys.add("a-active", KeyState.RETIRED, created=T0 + 10, verify_until=T0 + 50)
    keys.add("expired", KeyState.RETIRED, created=T0, verify_until=T0 + 5)
    keys.add("revoked", KeyState.REVOKED, created=T0 - 10, revoked_at=T0)
    reader = keys.load()

    jwks = reader.jwks(now=T0 + 30)

    assert kids(jwks) == ["a-active", "b-active", "pending"]
    assert all("d" not in jwk for jwk in jwks["keys"])


def test_registered_keys_leave_out_keys_that_no_longer_verify(keys: Keys) -> None:
    keys.add("k1", KeyState.ACTIVE, activate_at=T0)
    keys.add("k2", KeyState.RETIRED, verify_until=T0 + 5)
    keys.add("k3", KeyState.REVOKED, revoked_at=T0)
    reader = keys.load()

    assert set(reader.registered_keys(now=T0 + 5)) == {"k1", "k2"}
    assert set(reader.registered_keys(now=T0 + 6)) == {"k1"}


def test_public_keys_keep_revoked_keys_with_the_schedule_applied(keys: Keys) -> None:
    keys.add("old", KeyState.ACTIVE, activate_at=T0)
    keys.add("new", KeyState.PENDING, activate_at=T0 + 60)
    keys.add("gone", KeyState.REVOKED, revoked_at=T0)
    reader = keys.load()

    states = {kid: e.state for kid, e in reader.public_keys(now=T0 + 60).items()}

    assert states == {
        "old": KeyState.RETIRED,
        "new": KeyState.ACTIVE,
        "gone": KeyState.REVOKED,
    }


def test_closing_closes_the_token() -> None:
    class Token:
        closed = False

        def close(self) -> None:
            self.closed = True

    token = Token()
    reader = KeyringReader(Path("keyring"), PASS, {}, {}, hsm=cast(HsmToken, token))

    reader.close()

    assert token.closed


# -- helpers -------------------------------------------------------------------------


def test_keys_are_ordered_by_creation_then_kid() -> None:
    public = keyfiles.new_private_key(ED25519, "test").public_key()
    entries = [
        PublicKeyEntry(kid, ED25519, public, KeyState.ACTIVE, created)
        for kid, created in (("b", T0), ("c", T0 - 1), ("a", T0))
    ]

    assert [e.kid for e in sorted(entries, key=by_creation)] == ["c", "a", "b"]


@pytest.mark.parametrize(("now", "seconds"), [(T0 + 0.999, T0), (float(T0), T0)])
def test_a_time_is_cut_to_its_whole_second(now: float, seconds: int) -> None:
    assert whole_seconds(now) == seconds


def test_no_time_means_the_clocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "time", lambda: T0 + 0.5)

    assert whole_seconds(None) == T0
