"""Logged bodies: digests, encryption for the officers, the size cap."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gateway.errors import ConfigError
from gateway.msglog.bodies import (
    BodyKeyError,
    PeriodKey,
    body_entry,
    load_officer_keys,
    open_body,
    unwrap_data_key,
)

BODY = b'{"student":"redacted-in-tests","marks":[91,88]}'


@pytest.fixture
def officer() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


@pytest.fixture
def period_key(officer: X25519PrivateKey) -> PeriodKey:
    return PeriodKey.new("2024-06", {"so-1": officer.public_key()})


def entry(key: PeriodKey | None, *, max_bytes: int | None = None) -> dict[str, object]:
    return body_entry(
        BODY,
        mode="encrypted",
        max_bytes=max_bytes,
        key=key,
        message_id="m-1",
        part="response",
    )


def test_an_officer_reads_an_encrypted_body(
    officer: X25519PrivateKey, period_key: PeriodKey
) -> None:
    logged = entry(period_key)
    data_key = unwrap_data_key(period_key.envelope, "so-1", officer)

    assert open_body(logged, data_key, message_id="m-1", part="response") == BODY


def test_the_entry_holds_no_plaintext(period_key: PeriodKey) -> None:
    logged = entry(period_key)

    assert logged["logged"] == "encrypted"
    assert b"marks" not in repr(logged).encode()


def test_digest_mode_keeps_only_the_hash(period_key: PeriodKey) -> None:
    logged = body_entry(
        BODY,
        mode="digest",
        max_bytes=None,
        key=period_key,
        message_id="m-1",
        part="request",
    )

    assert logged == {
        "sha256": hashlib.sha256(BODY).hexdigest(),
        "size": len(BODY),
        "logged": "digest",
    }


def test_over_the_cap_only_the_digest_is_logged_and_said(
    period_key: PeriodKey,
) -> None:
    logged = entry(period_key, max_bytes=len(BODY) - 1)

    assert logged["logged"] == "digest"
    assert logged["over_cap"] is True
    assert "ciphertext" not in logged


def test_another_officer_key_cannot_unwrap(period_key: PeriodKey) -> None:
    with pytest.raises(BodyKeyError):
        unwrap_data_key(period_key.envelope, "so-1", X25519PrivateKey.generate())


def test_an_unknown_officer_has_no_copy(
    officer: X25519PrivateKey, period_key: PeriodKey
) -> None:
    with pytest.raises(BodyKeyError, match="no copy"):
        unwrap_data_key(period_key.envelope, "so-2", officer)


@pytest.mark.parametrize(
    ("message_id", "part"), [("m-2", "response"), ("m-1", "request")]
)
def test_a_body_moved_to_another_record_does_not_open(
    officer: X25519PrivateKey, period_key: PeriodKey, message_id: str, part: str
) -> None:
    logged = entry(period_key)
    data_key = unwrap_data_key(period_key.envelope, "so-1", officer)

    with pytest.raises(BodyKeyError):
        open_body(logged, data_key, message_id=message_id, part=part)


def test_a_changed_digest_is_detected(
    officer: X25519PrivateKey, period_key: PeriodKey
) -> None:
    logged = {**entry(period_key), "sha256": "00" * 32}
    data_key = unwrap_data_key(period_key.envelope, "so-1", officer)

    with pytest.raises(BodyKeyError, match="digest"):
        open_body(logged, data_key, message_id="m-1", part="response")


def test_officer_keys_load_from_pem_files(tmp_path: Path) -> None:
    public = X25519PrivateKey.generate().public_key()
    (tmp_path / "so-1.pem").write_bytes(
        public.public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        )
    )

    assert list(load_officer_keys(tmp_path)) == ["so-1"]


@pytest.mark.parametrize("content", ["ed25519", "garbage", None])
def test_bad_officer_key_files_are_config_errors(
    tmp_path: Path, content: str | None
) -> None:
    if content == "ed25519":
        pem = (
            Ed25519PrivateKey.generate()
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM,
                serialization.PublicFormat.SubjectPublicKeyInfo,
            )
        )
        (tmp_path / "so-1.pem").write_bytes(pem)
    elif content == "garbage":
        (tmp_path / "so-1.pem").write_bytes(b"not a key")

    with pytest.raises(ConfigError):
        load_officer_keys(tmp_path)
