"""Keys, their states, the rotation schedule as a function, and keyring records."""

from __future__ import annotations

import math
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from gateway.errors import ConfigError
from gateway.keyfiles import ECDSA_P256, ED25519, new_private_key, public_jwk
from gateway.keytypes import (
    KeyState,
    PublicKeyEntry,
    SigningKey,
    effective,
    next_due,
    parse_metadata,
    to_record,
    verify_raw,
)

T0 = 1796378400
RETAIN = 86_400
PUBLIC = ed25519.Ed25519PrivateKey.generate().public_key()
P256 = ec.generate_private_key(ec.SECP256R1())

PENDING, ACTIVE = KeyState.PENDING, KeyState.ACTIVE
RETIRED, REVOKED = KeyState.RETIRED, KeyState.REVOKED


def entry(
    kid: str,
    state: KeyState,
    *,
    created: int = T0,
    activate_at: int | None = None,
    verify_until: int | None = None,
) -> PublicKeyEntry:
    return PublicKeyEntry(
        kid,
        ED25519,
        PUBLIC,
        state,
        created,
        activate_at=activate_at,
        verify_until=verify_until,
    )


def keyed(*entries: PublicKeyEntry) -> dict[str, PublicKeyEntry]:
    return {e.kid: e for e in entries}


def states(entries: dict[str, PublicKeyEntry]) -> dict[str, KeyState]:
    return {kid: e.state for kid, e in entries.items()}


def record(**changes: Any) -> dict[str, Any]:
    base = to_record(entry("k1", ACTIVE, activate_at=T0))
    base.update(changes)
    return base


# -- signing and verifying -----------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "jws", "length"),
    [(ED25519, "EdDSA", 64), (ECDSA_P256, "ES256", 64)],
)
def test_a_signing_key_signs_what_verify_raw_accepts(
    algorithm: str, jws: str, length: int
) -> None:
    key = SigningKey("k1", algorithm, new_private_key(algorithm, "test"))

    signature = key.sign(b"size=10 root=abc")

    assert key.jws_algorithm == jws
    assert len(signature) == length
    assert verify_raw(algorithm, key.public_key(), b"size=10 root=abc", signature)
    assert not verify_raw(algorithm, key.public_key(), b"size=11 root=abc", signature)


@pytest.mark.parametrize("cut", [slice(0, 63), slice(0, 32)])
def test_an_ecdsa_signature_of_another_length_is_refused(cut: slice) -> None:
    key = SigningKey("k1", ECDSA_P256, P256)

    signature = key.sign(b"x")

    assert not verify_raw(ECDSA_P256, P256.public_key(), b"x", signature[cut])
    assert not verify_raw(ECDSA_P256, P256.public_key(), b"x", signature + b"\x00")


def test_an_ecdsa_signature_in_der_form_is_refused() -> None:
    """RFC 9421 section 3.3.4 signs with raw r || s; DER is another encoding."""
    der = P256.sign(b"x", ec.ECDSA(hashes.SHA256()))

    assert not verify_raw(ECDSA_P256, P256.public_key(), b"x", der)


@pytest.mark.parametrize(
    ("algorithm", "key"),
    [(ECDSA_P256, PUBLIC), (ED25519, P256.public_key()), ("hmac-sha256", PUBLIC)],
    ids=["ed25519-key-as-ecdsa", "p256-key-as-ed25519", "unknown-algorithm"],
)
def test_a_key_used_under_another_algorithm_verifies_nothing(
    algorithm: str, key: Any
) -> None:
    assert not verify_raw(algorithm, key, b"x", bytes(64))


@pytest.mark.parametrize(
    ("state", "verify_until", "at", "verifies"),
    [
        (ACTIVE, None, T0 + 10**9, True),
        (RETIRED, T0, T0, True),
        (RETIRED, T0, T0 + 1, False),
        (PENDING, None, T0, True),
        (REVOKED, None, T0, False),
        (REVOKED, T0 + 100, T0, False),
    ],
)
def test_a_key_verifies_until_its_date_unless_revoked(
    state: KeyState, verify_until: int | None, at: int, verifies: bool
) -> None:
    assert entry("k1", state, verify_until=verify_until).verifies(at) is verifies


# -- the schedule --------------------------------------------------------------------


def test_a_due_pending_key_signs_and_retires_the_active_one() -> None:
    stored = keyed(
        entry("old", ACTIVE, activate_at=T0),
        entry("new", PENDING, activate_at=T0 + 600),
    )

    now = effective(stored, T0 + 600, RETAIN)

    assert states(now) == {"old": RETIRED, "new": ACTIVE}
    assert now["old"].retired_at == T0 + 600
    assert now["old"].verify_until == T0 + 600 + RETAIN


def test_a_pending_key_one_second_early_changes_nothing() -> None:
    stored = keyed(
        entry("old", ACTIVE, activate_at=T0),
        entry("new", PENDING, activate_at=T0 + 600),
    )

    assert effective(stored, T0 + 599, RETAIN) == stored


def test_a_pending_key_without_a_date_waits_for_a_hand_activation() -> None:
    stored = keyed(entry("old", ACTIVE), entry("new", PENDING))

    assert effective(stored, T0 + 10**9, RETAIN) == stored


def test_of_two_due_pending_keys_the_later_one_signs() -> None:
    """A node that was down for both activations skips the first key."""
    stored = keyed(
        entry("old", ACTIVE, activate_at=T0),
        entry("first", PENDING, activate_at=T0 + 60),
        entry("second", PENDING, activate_at=T0 + 120),
    )

    now = effective(stored, T0 + 3600, RETAIN)

    assert states(now) == {"old": RETIRED, "first": RETIRED, "second": ACTIVE}
    assert now["first"].retired_at == now["old"].retired_at == T0 + 120


def test_a_pending_key_due_in_the_active_keys_second_takes_over() -> None:
    stored = keyed(
        entry("old", ACTIVE, activate_at=T0),
        entry("new", PENDING, activate_at=T0, created=T0 - 5),
    )

    assert states(effective(stored, T0, RETAIN)) == {"old": RETIRED, "new": ACTIVE}


def test_retired_and_revoked_keys_are_left_as_stored() -> None:
    stored = keyed(
        entry("gone", REVOKED, activate_at=T0 - 20),
        entry("was", RETIRED, activate_at=T0 - 10, verify_until=T0 + 5),
        entry("now", ACTIVE, activate_at=T0),
    )

    assert effective(stored, T0 + 10**6, RETAIN) == stored


def test_the_schedule_does_not_change_the_stored_entries() -> None:
    stored = keyed(
        entry("old", ACTIVE, activate_at=T0),
        entry("new", PENDING, activate_at=T0 + 1),
    )
    before = dict(stored)

    effective(stored, T0 + 1, RETAIN)

    assert stored == before


@pytest.mark.parametrize(
    ("pending", "at", "due"),
    [
        ((T0 + 60, T0 + 30), T0, T0 + 30),
        ((T0 + 60, T0), T0, T0 + 60),
        ((T0,), T0, math.inf),
        ((None,), T0, math.inf),
        ((), T0, math.inf),
    ],
)
def test_the_next_change_is_the_earliest_later_activation(
    pending: tuple[int | None, ...], at: int, due: float
) -> None:
    stored = keyed(
        entry("active", ACTIVE, activate_at=T0 + 10),
        *(entry(f"p{i}", PENDING, activate_at=a) for i, a in enumerate(pending)),
    )

    assert next_due(stored, at) == due


# -- records -------------------------------------------------------------------------


@pytest.mark.parametrize("hsm_label", [None, "node-hsm-1"])
def test_a_record_reads_back_as_the_same_entry(hsm_label: str | None) -> None:
    original = PublicKeyEntry(
        "k1",
        ECDSA_P256,
        P256.public_key(),
        RETIRED,
        T0,
        activate_at=T0 + 1,
        retired_at=T0 + 2,
        verify_until=T0 + 3,
        hsm_label=hsm_label,
    )
    stored = to_record(original)

    (read,) = parse_metadata({"keys": [stored]}, "keyring.json").values()

    assert to_record(read) == stored
    assert ("hsm_label" in stored) is (hsm_label is not None)


@pytest.mark.parametrize(
    ("document", "match"),
    [
        ([], "needs a 'keys' list"),
        ({"keys": {}}, "needs a 'keys' list"),
        ({"keys": [record(), record()]}, "key k1 appears twice"),
        ({"keys": ["k1"]}, "a key record is malformed"),
        ({"keys": [record(state="suspended")]}, "a key record is malformed"),
        ({"keys": [{"kid": "k1", "state": "active"}]}, "a key record is malformed"),
        ({"keys": [record(kid="../k1")]}, "unusable kid"),
        ({"keys": [record(algorithm="rsa-v1_5-sha256")]}, "unknown algorithm"),
        ({"keys": [record(hsm_label="k1")]}, "unusable hsm_label"),
        ({"keys": [record(created_at="yesterday")]}, "the record is malformed"),
        ({"keys": [record(verify_until=[1])]}, "the record is malformed"),
        ({"keys": [record(public_jwk={"kty": "OKP"})]}, "the record is malformed"),
        ({"keys": [record(algorithm=ECDSA_P256)]}, "the record is malformed"),
    ],
)
def test_a_bad_keyring_document_is_a_config_error(document: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as caught:
        parse_metadata(document, "keyring.json")

    assert caught.value.file == "keyring.json"


def test_an_hsm_label_that_could_name_a_path_is_refused() -> None:
    p256 = record(algorithm=ECDSA_P256, public_jwk=public_jwk("k1", P256.public_key()))

    with pytest.raises(ConfigError, match="unusable hsm_label"):
        parse_metadata({"keys": [{**p256, "hsm_label": "../k1"}]}, "keyring.json")
