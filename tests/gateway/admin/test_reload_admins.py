"""A reload renews who may call the admin surface: admins.yaml and client keys."""

from __future__ import annotations

import time

import httpx
import jwt
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from jwt.algorithms import OKPAlgorithm

from gateway.client import new_client_key
from gateway.deployment import ReloadRefusedError
from tests.gateway.conftest import SABOOJSATHI, Harness

pytestmark = pytest.mark.anyio

API = "/admin/api/v1"


def _write_admins(harness: Harness, private: ed25519.Ed25519PrivateKey | None) -> None:
    """admins.yaml naming alice (security officer) with ``private``'s key, or no one."""
    file = harness.demo.config_dir / "admins.yaml"
    if private is None:
        file.write_text("admins: []\n")
        return
    jwk = OKPAlgorithm.to_jwk(private.public_key(), as_dict=True)
    jwk.update({"kid": "alice-1", "alg": "EdDSA"})
    file.write_text(
        "admins:\n  - id: alice\n    role: security_officer\n"
        f"    jwk: {orjson.dumps(jwk).decode()}\n"
    )


async def _as_alice(harness: Harness, private: ed25519.Ed25519PrivateKey) -> int:
    now = int(time.time())
    claims = {
        "iss": "alice",
        "sub": "alice",
        "aud": f"{harness.demo.audience}/admin",
        "iat": now,
        "exp": now + 60,
    }
    token = jwt.encode(claims, private, algorithm="EdDSA", headers={"kid": "alice-1"})
    answer = await harness.http.get(
        f"{harness.demo.mediator_url}{API}/log/search",
        headers={"authorization": f"Bearer {token}"},
    )
    return answer.status_code


async def _as_saboojsathi(harness: Harness) -> httpx.Response:
    token = harness.client(SABOOJSATHI).assertion()
    return await harness.http.get(
        f"{harness.demo.mediator_url}{API}/opmonitoring",
        headers={"authorization": f"Bearer {token}", "x-road-client": str(SABOOJSATHI)},
    )


async def test_an_admin_added_to_admins_yaml_is_accepted_after_a_reload(
    harness: Harness,
) -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    _write_admins(harness, private)

    await harness.node.reload()

    assert await _as_alice(harness, private) == 200


async def test_an_admin_removed_from_admins_yaml_is_refused_after_a_reload(
    harness: Harness,
) -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    _write_admins(harness, private)
    await harness.node.reload()
    accepted = await _as_alice(harness, private)
    _write_admins(harness, None)

    await harness.node.reload()
    refused = await _as_alice(harness, private)

    assert (accepted, refused) == (200, 401)


async def test_a_broken_admins_yaml_refuses_the_reload_and_keeps_the_admins(
    harness: Harness,
) -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    _write_admins(harness, private)
    await harness.node.reload()
    (harness.demo.config_dir / "admins.yaml").write_text("admins: [{id: alice}]\n")

    with pytest.raises(ReloadRefusedError, match=r"admins\.yaml"):
        await harness.node.reload()

    assert await _as_alice(harness, private) == 200


async def test_a_client_key_withdrawn_by_a_reload_no_longer_opens_the_admin_api(
    harness: Harness,
) -> None:
    """The admin surface verifies client assertions with the running directory."""
    before = await _as_saboojsathi(harness)
    _, replacement = new_client_key("saboojsathi-new")
    jwks = harness.demo.config_dir / "clients" / "saboojsathi.jwks.json"
    jwks.write_bytes(orjson.dumps({"keys": [replacement]}))

    await harness.node.reload()
    after = await _as_saboojsathi(harness)

    assert before.status_code == 200
    assert after.status_code == 401
    assert after.headers["x-road-error"] == "Client.invalid_token"
