"""HSM keys through PKCS#11, for real against SoftHSM2: generated in the token,
not extractable, and their signatures verified by ``cryptography``."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.errors import ConfigError
from gateway.hsm import HsmKey, open_token
from gateway.keyring import ECDSA_P256, verify_raw
from gateway.secrets import Secret

pytestmark = pytest.mark.hsm


def test_a_generated_key_signs_and_cryptography_verifies(
    softhsm: dict[str, str],
) -> None:
    with open_token(softhsm["library"], softhsm["label"], Secret(softhsm["pin"])) as s:
        key = HsmKey.generate(s, "mediator-hsm-1")
        signature = key.sign(b"checkpoint size=10")

    assert isinstance(key.public_key().curve, ec.SECP256R1)
    assert len(signature) == 64
    assert verify_raw(ECDSA_P256, key.public_key(), b"checkpoint size=10", signature)
    assert not verify_raw(ECDSA_P256, key.public_key(), b"size=11", signature)


def test_the_private_key_is_sensitive_and_not_extractable(
    softhsm: dict[str, str],
) -> None:
    import pkcs11

    with open_token(softhsm["library"], softhsm["label"], Secret(softhsm["pin"])) as s:
        HsmKey.generate(s, "mediator-hsm-2")
        private = s.get_key(
            object_class=pkcs11.ObjectClass.PRIVATE_KEY, label="mediator-hsm-2"
        )

        assert private[pkcs11.Attribute.EXTRACTABLE] is False
        assert private[pkcs11.Attribute.SENSITIVE] is True
        with pytest.raises(pkcs11.PKCS11Error):
            private[pkcs11.Attribute.VALUE]


def test_a_key_is_found_again_by_its_kid(softhsm: dict[str, str]) -> None:
    with open_token(softhsm["library"], softhsm["label"], Secret(softhsm["pin"])) as s:
        made = HsmKey.generate(s, "mediator-hsm-3")
        found = HsmKey.find(s, "mediator-hsm-3")
        signature = found.sign(b"x")

    assert verify_raw(ECDSA_P256, made.public_key(), b"x", signature)


def test_a_wrong_pin_is_a_config_error_without_the_pin(softhsm: dict[str, str]) -> None:
    library, label = softhsm["library"], softhsm["label"]
    with (
        pytest.raises(ConfigError, match="cannot be opened") as info,
        open_token(library, label, Secret("999999")),
    ):
        pass

    assert "999999" not in str(info.value)
