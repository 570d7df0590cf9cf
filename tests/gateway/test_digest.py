"""Content-Digest (RFC 9530): the value the node writes and the values it accepts."""

from __future__ import annotations

import base64
import hashlib

import pytest

from gateway.digest import check_content_digest, content_digest

BODY = b'{"udise_code":"19110900503","name":"Sample School"}'


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


SHA256 = _b64(hashlib.sha256(BODY).digest())
SHA512 = _b64(hashlib.sha512(BODY).digest())
OTHER256 = _b64(hashlib.sha256(b"{}").digest())


def test_the_written_digest_is_sha256_as_a_byte_sequence() -> None:
    """The empty body gives the well-known SHA-256 of nothing, between colons."""
    assert content_digest(b"") == (
        "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"
    )


@pytest.mark.parametrize("body", [b"", BODY, b"\x00\xff" * 4096])
def test_a_written_digest_is_accepted_for_its_own_body(body: bytes) -> None:
    """What the node writes, it accepts back for the same bytes."""
    assert check_content_digest(content_digest(body), body) is True


def test_a_written_digest_is_refused_for_another_body() -> None:
    """One changed byte of the body fails the check."""
    changed = BODY.replace(b"Sample", b"Simple")

    assert check_content_digest(content_digest(BODY), changed) is False


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(f"sha-512=:{SHA512}:", id="sha-512-alone"),
        pytest.param(f"sha-256=:{SHA256}:, sha-512=:{SHA512}:", id="both"),
        pytest.param(f"sha-512=:{SHA512}:,sha-256=:{SHA256}:", id="both-no-space"),
        pytest.param(f"  sha-256=:{SHA256}:  ", id="outer-spaces"),
        pytest.param(f"sha-256=:{SHA256.rstrip('=')}:", id="unpadded-base64"),
    ],
)
def test_well_formed_matching_digests_are_accepted(header: str) -> None:
    """Either algorithm, or both, in any order; RFC 8941 allows outer spaces."""
    assert check_content_digest(header, BODY) is True


def test_every_digest_present_must_match() -> None:
    """A matching SHA-256 does not excuse a wrong SHA-512 beside it."""
    wrong512 = _b64(hashlib.sha512(b"{}").digest())

    assert check_content_digest(f"sha-256=:{SHA256}:, sha-512=:{wrong512}:", BODY) is (
        False
    )


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(None, id="absent"),
        pytest.param("", id="empty"),
        pytest.param(f"sha-256=:{OTHER256}:", id="other-body"),
        pytest.param(f"SHA-256=:{SHA256}:", id="upper-case-name"),
        pytest.param(f"md5=:{SHA256}:", id="unknown-algorithm"),
        pytest.param(f"sha-256=:{SHA256}:, md5=:AAAA:", id="unknown-beside-known"),
        pytest.param(f"sha-256=:{SHA256}:, sha-256=:{SHA256}:", id="repeated-name"),
        pytest.param(f"sha-256=:{SHA256}:;kid=1", id="parameter"),
        pytest.param(f'sha-256="{SHA256}"', id="string-not-bytes"),
        pytest.param(f"sha-256=({SHA256.rstrip('=')})", id="inner-list"),
        pytest.param("sha-256", id="bare-name"),
        pytest.param("sha-256=?1", id="boolean"),
        pytest.param(f"sha-256=:{SHA512}:", id="sha-512-length-as-sha-256"),
        pytest.param(f"sha-512=:{SHA256}:", id="sha-256-length-as-sha-512"),
        pytest.param(f"sha-256={SHA256}", id="no-colons"),
        pytest.param(f"sha-256=:{SHA256}:,", id="trailing-comma"),
        pytest.param("sha-256=:\u00e9:", id="non-ascii"),
    ],
)
def test_malformed_or_mismatched_digests_are_refused(header: str | None) -> None:
    """Anything but a dictionary of known, parameterless, full-length byte
    sequences that all match is a failed check, never an exception."""
    assert check_content_digest(header, BODY) is False
