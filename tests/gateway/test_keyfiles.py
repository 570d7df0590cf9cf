"""Files of a keyring directory: kids, modes, locks, encrypted keys and JWK forms."""

from __future__ import annotations

import fcntl
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from gateway.errors import ConfigError
from gateway.keyfiles import (
    ECDSA_P256,
    ED25519,
    LOCK,
    check_directory,
    dump,
    key_file,
    locked,
    new_private_key,
    public_from_jwk,
    public_jwk,
    public_raw,
    read_private,
    safe_kid,
    write_atomic,
    write_private,
)
from gateway.secrets import Secret

PASS = Secret("correct horse battery staple")
KID = "mediator-20261204-ab12cd34"


@pytest.fixture
def keydir(tmp_path: Path) -> Path:
    path = tmp_path / "keyring"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def other_fd(keydir: Path) -> Iterator[int]:
    """A second open file description of the lock file, as another process has."""
    fd = os.open(keydir / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    yield fd
    os.close(fd)


def can_lock(fd: int, operation: int) -> bool:
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    fcntl.flock(fd, fcntl.LOCK_UN)
    return True


# -- kids --------------------------------------------------------------------------


@pytest.mark.parametrize("kid", [KID, "a", "A_b-9", "x" * 64])
def test_a_kid_of_ascii_letters_digits_dash_and_underscore_is_safe(kid: str) -> None:
    assert safe_kid(kid)


@pytest.mark.parametrize(
    "kid",
    [
        "",
        "x" * 65,
        "..",
        "../etc/passwd",
        "a/b",
        "a\\b",
        "a.key",
        "a b",
        "a\x00b",
        "ké",
        "١٢٣",  # Arabic-Indic digits: alphanumeric, but not ASCII
        None,
        42,
    ],
)
def test_a_kid_that_could_leave_the_directory_or_is_no_name_is_unsafe(
    kid: object,
) -> None:
    assert not safe_kid(kid)


# -- the directory and its lock ------------------------------------------------------


def test_a_private_directory_is_accepted(keydir: Path) -> None:
    check_directory(keydir)


@pytest.mark.parametrize("mode", [0o770, 0o702, 0o777], ids=oct)
def test_a_directory_others_may_write_to_is_refused(keydir: Path, mode: int) -> None:
    keydir.chmod(mode)

    with pytest.raises(ConfigError, match="must not be group or world writable"):
        check_directory(keydir)


def test_a_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        check_directory(tmp_path / "absent")


def test_a_file_in_place_of_the_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "keyring").write_text("")

    with pytest.raises(ConfigError, match="not a directory"):
        check_directory(tmp_path / "keyring")


def test_the_exclusive_lock_keeps_every_other_holder_out(
    keydir: Path, other_fd: int
) -> None:
    with locked(keydir):
        assert not can_lock(other_fd, fcntl.LOCK_SH)

    assert can_lock(other_fd, fcntl.LOCK_EX)


def test_the_shared_lock_admits_readers_but_no_writer(
    keydir: Path, other_fd: int
) -> None:
    with locked(keydir, shared=True):
        assert can_lock(other_fd, fcntl.LOCK_SH)
        assert not can_lock(other_fd, fcntl.LOCK_EX)


def test_the_lock_file_is_private(keydir: Path) -> None:
    with locked(keydir):
        pass

    assert stat.S_IMODE((keydir / LOCK).stat().st_mode) == 0o600


def test_a_lock_that_cannot_be_opened_is_a_config_error(tmp_path: Path) -> None:
    with (
        pytest.raises(ConfigError, match="lock cannot be opened"),
        locked(tmp_path / "absent"),
    ):
        pass


# -- private keys --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "kind"),
    [(ED25519, ed25519.Ed25519PrivateKey), (ECDSA_P256, ec.EllipticCurvePrivateKey)],
)
def test_a_new_key_is_of_its_algorithm(algorithm: str, kind: type) -> None:
    key = new_private_key(algorithm, "keys rotate")

    assert isinstance(key, kind)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        assert isinstance(key.curve, ec.SECP256R1)


def test_a_new_key_of_another_algorithm_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown key algorithm 'rsa-pss-sha512'"):
        new_private_key("rsa-pss-sha512", "keys rotate")


@pytest.mark.parametrize("algorithm", [ED25519, ECDSA_P256])
def test_a_written_key_reads_back_encrypted_and_private(
    keydir: Path, algorithm: str
) -> None:
    key = new_private_key(algorithm, "test")
    write_private(keydir, KID, key, PASS)
    file = key_file(keydir, KID)

    read = read_private(keydir, KID, key.public_key(), PASS)

    assert public_raw(read.public_key()) == public_raw(key.public_key())
    assert file.name == f"{KID}.key.pem"
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in file.read_bytes()


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o610, 0o601], ids=oct)
def test_a_key_file_others_may_touch_is_refused(keydir: Path, mode: int) -> None:
    key = new_private_key(ED25519, "test")
    write_private(keydir, KID, key, PASS)
    key_file(keydir, KID).chmod(mode)

    with pytest.raises(ConfigError, match="must have mode 0600"):
        read_private(keydir, KID, key.public_key(), PASS)


def test_a_missing_key_file_is_refused(keydir: Path) -> None:
    public = new_private_key(ED25519, "test").public_key()

    with pytest.raises(ConfigError, match="cannot be read"):
        read_private(keydir, KID, public, PASS)


def test_a_wrong_passphrase_is_refused_without_echo(keydir: Path) -> None:
    key = new_private_key(ED25519, "test")
    write_private(keydir, KID, key, PASS)

    with pytest.raises(ConfigError, match="cannot be decrypted") as caught:
        read_private(keydir, KID, key.public_key(), Secret("wrong guess"))

    assert "wrong guess" not in str(caught.value)
    assert "wrong guess" not in repr(caught.value.__cause__)


def test_a_key_file_that_fits_another_public_key_is_refused(keydir: Path) -> None:
    write_private(keydir, KID, new_private_key(ED25519, "test"), PASS)
    other = new_private_key(ED25519, "test").public_key()

    with pytest.raises(ConfigError, match=r"does not match keyring\.json"):
        read_private(keydir, KID, other, PASS)


def test_a_key_file_of_another_type_is_refused(keydir: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASS.reveal()),
    )
    write_atomic(key_file(keydir, KID), pem, 0o600)
    public = new_private_key(ED25519, "test").public_key()

    with pytest.raises(ConfigError, match="not an Ed25519 or P-256 private key"):
        read_private(keydir, KID, public, PASS)


# -- atomic writes -------------------------------------------------------------------


def test_an_atomic_write_replaces_the_file_with_its_mode_and_no_leftover(
    keydir: Path,
) -> None:
    target = keydir / "keyring.json"
    target.write_bytes(b"old")
    target.chmod(0o644)

    write_atomic(target, b"new", 0o600)

    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in keydir.iterdir()] == ["keyring.json"]


def test_a_failed_atomic_write_leaves_the_target_and_no_temporary_file(
    keydir: Path,
) -> None:
    target = keydir / "keyring.json"
    target.mkdir()  # a rename over a directory fails after the data was written

    with pytest.raises(IsADirectoryError):
        write_atomic(target, b"new", 0o600)

    assert target.is_dir()
    assert [p.name for p in keydir.iterdir()] == ["keyring.json"]


def test_a_dumped_document_is_sorted_indented_and_ends_with_a_newline() -> None:
    assert dump({"b": 1, "a": [2]}) == b'{\n  "a": [\n    2\n  ],\n  "b": 1\n}\n'


# -- JWK forms -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "kty", "alg"),
    [(ED25519, "OKP", "EdDSA"), (ECDSA_P256, "EC", "ES256")],
)
def test_a_public_jwk_names_its_key_and_holds_no_private_part(
    algorithm: str, kty: str, alg: str
) -> None:
    public = new_private_key(algorithm, "test").public_key()

    jwk = public_jwk(KID, public)

    assert (jwk["kty"], jwk["alg"], jwk["kid"], jwk["use"]) == (kty, alg, KID, "sig")
    assert "d" not in jwk


@pytest.mark.parametrize("algorithm", [ED25519, ECDSA_P256])
def test_a_public_jwk_reads_back_as_the_same_key(algorithm: str) -> None:
    public = new_private_key(algorithm, "test").public_key()

    read = public_from_jwk(algorithm, public_jwk(KID, public))

    assert public_raw(read) == public_raw(public)


def test_a_jwk_on_another_curve_than_p256_is_refused() -> None:
    public = ec.generate_private_key(ec.SECP384R1()).public_key()
    jwk = ECAlgorithm.to_jwk(public, as_dict=True)

    with pytest.raises(TypeError, match="only P-256"):
        public_from_jwk(ECDSA_P256, jwk)


@pytest.mark.parametrize(
    ("algorithm", "jwk"),
    [
        (ED25519, OKPAlgorithm.to_jwk(ed25519.Ed25519PrivateKey.generate())),
        (ECDSA_P256, ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()))),
    ],
    ids=["ed25519", "p256"],
)
def test_a_private_jwk_is_not_taken_as_a_public_key(algorithm: str, jwk: str) -> None:
    with pytest.raises(TypeError, match="does not fit its algorithm"):
        public_from_jwk(algorithm, json.loads(jwk))


@pytest.mark.parametrize(
    ("algorithm", "jwk"),
    [
        (ED25519, {"kty": "OKP", "crv": "Ed25519"}),
        (ED25519, {"kty": "OKP", "crv": "Ed25519", "x": "!!"}),
        (ED25519, {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}),
        (ECDSA_P256, {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}),
        (ECDSA_P256, {"kty": "RSA", "n": "AQAB", "e": "AQAB"}),
        (ECDSA_P256, {}),
    ],
)
def test_a_malformed_jwk_is_a_value_error(algorithm: str, jwk: object) -> None:
    """The documented error, so that a keyring record with one is a ConfigError."""
    with pytest.raises(ValueError, match="the JWK is malformed"):
        public_from_jwk(algorithm, jwk)


@pytest.mark.parametrize("jwk", ["not an object", ["OKP"], None])
def test_a_jwk_that_is_no_object_is_a_type_error(jwk: object) -> None:
    with pytest.raises(TypeError, match="must be an object"):
        public_from_jwk(ED25519, jwk)
