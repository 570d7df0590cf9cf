"""Admin credentials: admins.yaml, stored API keys, and what each header proves."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, cast

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from jwt.algorithms import OKPAlgorithm

from gateway.admin.auth import (
    API_KEY_PREFIX,
    AdminAuthenticator,
    Identity,
    Role,
    add_key,
    load_admins,
    match_key,
    new_api_key,
    read_keys,
)
from gateway.auth import AuthenticatedClient, ClientAuthenticator
from gateway.errors import AuthenticationError, ConfigError, FramingError
from gateway.framing import Headers
from gateway.identifiers import ClientId

pytestmark = pytest.mark.anyio

AUDIENCE = "https://mediator.test"
LIFETIME = 300
KANYASHREE = ClientId("WB", "GOV", "WCD", "kanyashree")
ALICE_KEY = ed25519.Ed25519PrivateKey.generate()
OTHER_KEY = ed25519.Ed25519PrivateKey.generate()


def _jwk(private: ed25519.Ed25519PrivateKey, kid: str) -> dict[str, Any]:
    jwk = OKPAlgorithm.to_jwk(private.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "alg": "EdDSA"}


def _admins_file(tmp_path: Path, *entries: dict[str, Any]) -> Path:
    """admins.yaml with the given entries (JSON is YAML 1.2)."""
    path = tmp_path / "admins.yaml"
    path.write_text(json.dumps({"admins": list(entries)}), encoding="utf-8")
    return path


def _alice(**overrides: Any) -> dict[str, Any]:
    entry = {"id": "alice", "role": "security_officer", "jwk": _jwk(ALICE_KEY, "a1")}
    return {**entry, **overrides}


class _Clients:
    """A client authenticator that proves KANYASHREE and records what it saw."""

    def __init__(self) -> None:
        self.seen: list[str | None] = []

    async def authenticate(self, authorization: str | None) -> AuthenticatedClient:
        self.seen.append(authorization)
        return AuthenticatedClient(KANYASHREE, "k1", "0" * 64, 0)


def _authenticator(
    tmp_path: Path, admins: dict[str, Any] | None = None, clients: Any = None
) -> AdminAuthenticator:
    return AdminAuthenticator(
        admins=admins if admins is not None else load_admins(tmp_path / "none.yaml"),
        keys_file=tmp_path / "admin_keys.json",
        audience=AUDIENCE,
        max_lifetime_s=LIFETIME,
        leeway_s=60,
        clients=cast(ClientAuthenticator, clients or _Clients()),
    )


def _with_alice(tmp_path: Path, clients: Any = None) -> AdminAuthenticator:
    admins = load_admins(_admins_file(tmp_path, _alice()))
    return _authenticator(tmp_path, admins, clients)


def _token(
    private: ed25519.Ed25519PrivateKey = ALICE_KEY,
    kid: str | None = "a1",
    **overrides: Any,
) -> str:
    now = int(time.time())
    claims = {
        "iss": "alice",
        "sub": "alice",
        "aud": f"{AUDIENCE}/admin",
        "iat": now,
        "exp": now + 60,
        **overrides,
    }
    claims = {name: value for name, value in claims.items() if value is not None}
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(claims, private, algorithm="EdDSA", headers=headers)


def _bearer(token: str, *extra: tuple[str, str]) -> Headers:
    return Headers((("authorization", f"Bearer {token}"), *extra))


# -- admins.yaml -----------------------------------------------------------------------


def test_no_admins_file_means_no_jwt_admins(tmp_path: Path) -> None:
    assert load_admins(tmp_path / "admins.yaml") == {}


def test_an_admin_is_loaded_with_its_role_and_key(tmp_path: Path) -> None:
    admins = load_admins(_admins_file(tmp_path, _alice()))

    assert admins["alice"].role is Role.SECURITY_OFFICER
    assert set(admins["alice"].keys) == {"a1"}


def test_a_jwks_file_is_read_beside_admins_yaml(tmp_path: Path) -> None:
    keys = {"keys": [_jwk(ALICE_KEY, "a1"), _jwk(OTHER_KEY, "a2")]}
    (tmp_path / "alice.jwks").write_text(json.dumps(keys), encoding="utf-8")

    admins = load_admins(_admins_file(tmp_path, _alice(jwk=None, jwks="alice.jwks")))

    assert set(admins["alice"].keys) == {"a1", "a2"}


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([_alice(role="client")], "admin 'alice': role must be an admin role"),
        ([_alice(role="root")], "admins.0.role: Input should be"),
        ([_alice(jwks="alice.jwks")], "admin 'alice': give one of jwk, jwks"),
        ([_alice(jwk=None)], "admin 'alice': give one of jwk, jwks"),
        ([_alice(), _alice()], "admin 'alice' is listed twice"),
        ([_alice(id="-alice")], "admins.0.id: String should match pattern"),
        ([_alice(colour="red")], "admins.0.colour: Extra inputs are not permitted"),
        ([_alice(jwk={**_jwk(ALICE_KEY, "a1"), "d": "x"})], "only public keys"),
        ([_alice(jwk=None, jwks="missing.jwks")], "not a readable JSON Web Key Set"),
    ],
)
def test_an_unusable_admin_entry_is_a_config_error(
    tmp_path: Path, entries: list[dict[str, Any]], message: str
) -> None:
    """A client role, one key source too many or too few, a repeated id, a bad id,
    an unknown field, a private key or a missing JWKS file."""
    with pytest.raises(ConfigError, match=message):
        load_admins(_admins_file(tmp_path, *entries))


# -- stored API keys -------------------------------------------------------------------


def test_a_new_api_key_is_random_and_marked() -> None:
    (first_id, first), (second_id, second) = new_api_key(), new_api_key()

    assert first.startswith(API_KEY_PREFIX)
    assert len(first) > 40
    assert (first_id, first) != (second_id, second)


def test_no_key_file_means_no_keys(tmp_path: Path) -> None:
    assert read_keys(tmp_path / "admin_keys.json") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not a readable API key file"),
        ("[]", "an API key record is malformed"),
        ('{"keys": [{"id": "k"}]}', "an API key record is malformed"),
        (
            '{"keys": [{"id": "k", "role": "root", "sha256": "", "created_at": 1}]}',
            "an API key record is malformed",
        ),
        (
            '{"keys": [{"id": "k", "role": "ops", "sha256": "", "created_at": "x"}]}',
            "an API key record is malformed",
        ),
    ],
)
def test_a_key_file_that_is_not_key_records_is_a_config_error(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "admin_keys.json"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(ConfigError, match=message):
        read_keys(path)


def test_a_key_is_made_for_admin_roles_only(tmp_path: Path) -> None:
    path = tmp_path / "admin_keys.json"

    with pytest.raises(ConfigError, match="is not an admin role"):
        add_key(path, Role.CLIENT)
    assert not path.exists()


def test_adding_a_key_keeps_the_earlier_ones_and_no_temporary_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state" / "admin_keys.json"
    first, _ = add_key(path, Role.OPS)
    second, _ = add_key(path, Role.INTEGRATOR)

    assert read_keys(path) == [first, second]
    assert [p.name for p in path.parent.iterdir()] == ["admin_keys.json"]


def test_a_presented_key_matches_only_its_own_record(tmp_path: Path) -> None:
    path = tmp_path / "admin_keys.json"
    ops, ops_key = add_key(path, Role.OPS)
    officer, officer_key = add_key(path, Role.SECURITY_OFFICER)
    stored = read_keys(path)

    assert match_key(officer_key, stored) == officer
    assert match_key(ops_key, stored) == ops
    assert match_key(ops.sha256, stored) is None


def test_an_identity_is_written_to_the_audit_log_with_how_it_was_proven() -> None:
    assert Identity("key-1a2b", Role.OPS, "apikey").actor == "apikey:key-1a2b"


# -- the Authorization header ----------------------------------------------------------


@pytest.mark.parametrize("value", [None, ""])
async def test_no_credential_is_a_missing_credential(
    tmp_path: Path, value: str | None
) -> None:
    headers = Headers(() if value is None else (("authorization", value),))

    with pytest.raises(AuthenticationError, match="missing_credential"):
        await _authenticator(tmp_path).authenticate(headers)


async def test_a_repeated_authorization_header_is_refused(tmp_path: Path) -> None:
    _, key = add_key(tmp_path / "admin_keys.json", Role.OPS)
    headers = Headers(
        (("authorization", f"ApiKey {key}"), ("authorization", "ApiKey other"))
    )

    with pytest.raises(FramingError, match="invalid_header") as caught:
        await _authenticator(tmp_path).authenticate(headers)
    assert caught.value.log_reason == "duplicate_authorization"


@pytest.mark.parametrize(
    ("value", "log_reason"),
    [
        ("ApiKey " + "k" * 8186, "too_large"),
        ("ApiKey " + "k" * 8185, "unknown_api_key"),
        ("Basic YWxpY2U6c2VjcmV0", "bad_scheme"),
        ("Token abc", "bad_scheme"),
        ("ApiKey", "unknown_api_key"),
    ],
)
async def test_an_unusable_credential_is_an_invalid_token(
    tmp_path: Path, value: str, log_reason: str
) -> None:
    """Over 8192 characters, another scheme, or an API key that is not stored."""
    headers = Headers((("authorization", value),))

    with pytest.raises(AuthenticationError, match="invalid_token") as caught:
        await _authenticator(tmp_path).authenticate(headers)
    assert caught.value.log_reason == log_reason


@pytest.mark.parametrize("scheme", ["ApiKey", "apikey", "APIKEY"])
async def test_a_stored_api_key_proves_its_role(tmp_path: Path, scheme: str) -> None:
    stored, key = add_key(tmp_path / "admin_keys.json", Role.INTEGRATOR)
    headers = Headers((("authorization", f"{scheme} {key} "),))

    identity = await _authenticator(tmp_path).authenticate(headers)

    assert identity == Identity(stored.id, Role.INTEGRATOR, "apikey")


async def test_a_key_added_while_the_node_runs_is_accepted(tmp_path: Path) -> None:
    """The key file is read on each request, so a new key needs no restart."""
    authenticator = _authenticator(tmp_path)
    stored, key = add_key(tmp_path / "admin_keys.json", Role.OPS)

    identity = await authenticator.authenticate(
        Headers((("authorization", f"ApiKey {key}"),))
    )

    assert identity.id == stored.id


# -- admin JWTs ------------------------------------------------------------------------


@pytest.mark.parametrize("kid", ["a1", None])
async def test_an_admin_jwt_proves_the_admins_role(
    tmp_path: Path, kid: str | None
) -> None:
    """With the key's kid, or without one when the admin has a single key."""
    identity = await _with_alice(tmp_path).authenticate(_bearer(_token(kid=kid)))

    assert identity == Identity("alice", Role.SECURITY_OFFICER, "jwt")


async def test_a_token_expired_within_the_leeway_is_accepted(tmp_path: Path) -> None:
    now = int(time.time())
    token = _token(iat=now - 90, exp=now - 30)

    identity = await _with_alice(tmp_path).authenticate(_bearer(token))

    assert identity.id == "alice"


@pytest.mark.parametrize(
    ("token", "log_reason"),
    [
        (_token(aud=AUDIENCE), "bad_jwt"),
        (_token(aud=f"{AUDIENCE}/other"), "bad_jwt"),
        (_token(exp=int(time.time()) - 120), "bad_jwt"),
        (_token(iat=None), "bad_jwt"),
        (_token(sub=None), "bad_jwt"),
        (_token(private=OTHER_KEY), "bad_jwt"),
        (_token(kid="a2"), "unknown_kid"),
        (_token(sub="bob"), "bad_claims"),
        (_token(exp=int(time.time()) + LIFETIME + 1), "bad_claims"),
    ],
    ids=[
        "the node's exchange audience",
        "another audience",
        "expired",
        "no iat",
        "no sub",
        "another key",
        "an unknown kid",
        "sub is not the admin",
        "lives too long",
    ],
)
async def test_an_admin_jwt_that_does_not_hold_is_refused(
    tmp_path: Path, token: str, log_reason: str
) -> None:
    with pytest.raises(AuthenticationError, match="invalid_token") as caught:
        await _with_alice(tmp_path).authenticate(_bearer(token))
    assert caught.value.log_reason == log_reason


@pytest.mark.parametrize("claim", ["iat", "exp"])
async def test_an_admin_jwt_whose_times_are_not_numbers_is_refused(
    tmp_path: Path, claim: str
) -> None:
    """A NumericDate is a JSON number (RFC 7519 section 2), never a string."""
    now = int(time.time())
    token = _token(**{claim: str(now + 60 if claim == "exp" else now)})

    with pytest.raises(AuthenticationError, match="invalid_token") as caught:
        await _with_alice(tmp_path).authenticate(_bearer(token))
    assert caught.value.log_reason == "bad_claims"


async def test_an_unsigned_admin_jwt_is_refused(tmp_path: Path) -> None:
    now = int(time.time())
    claims = {"iss": "alice", "sub": "alice", "aud": f"{AUDIENCE}/admin"}
    token = jwt.encode(
        {**claims, "iat": now, "exp": now + 60},
        key="",
        algorithm="none",
        headers={"kid": "a1"},
    )

    with pytest.raises(AuthenticationError, match="invalid_token") as caught:
        await _with_alice(tmp_path).authenticate(_bearer(token))
    assert caught.value.log_reason == "bad_jwt"


async def test_a_jwt_without_a_kid_is_refused_when_the_admin_has_two_keys(
    tmp_path: Path,
) -> None:
    keys = {"keys": [_jwk(ALICE_KEY, "a1"), _jwk(OTHER_KEY, "a2")]}
    (tmp_path / "alice.jwks").write_text(json.dumps(keys), encoding="utf-8")
    admins = load_admins(_admins_file(tmp_path, _alice(jwk=None, jwks="alice.jwks")))

    with pytest.raises(AuthenticationError, match="invalid_token") as caught:
        await _authenticator(tmp_path, admins).authenticate(_bearer(_token(kid=None)))
    assert caught.value.log_reason == "unknown_kid"


async def test_a_jwt_naming_an_admin_never_reaches_the_client_check(
    tmp_path: Path,
) -> None:
    """A forged admin token is refused as one, not tried as a client assertion."""
    clients = _Clients()
    headers = _bearer(_token(private=OTHER_KEY), ("x-road-client", str(KANYASHREE)))

    with pytest.raises(AuthenticationError):
        await _with_alice(tmp_path, clients).authenticate(headers)
    assert clients.seen == []


# -- departmental clients --------------------------------------------------------------


async def test_a_client_assertion_proves_the_client_role(tmp_path: Path) -> None:
    """Any bearer token that names no admin is a client's, checked whole."""
    clients = _Clients()
    token = _token(iss="WB/GOV/WCD/kanyashree")

    identity = await _with_alice(tmp_path, clients).authenticate(
        _bearer(token, ("x-road-client", str(KANYASHREE)))
    )

    assert identity == Identity(str(KANYASHREE), Role.CLIENT, "client")
    assert clients.seen == [f"Bearer {token}"]


@pytest.mark.parametrize(
    "claimed", [(), (("x-road-client", "WB/GOV/BCW/saboojsathi"),)]
)
async def test_a_client_must_claim_the_id_its_assertion_proves(
    tmp_path: Path, claimed: tuple[tuple[str, str], ...]
) -> None:
    """A missing or different X-Road-Client is a mismatch."""
    with pytest.raises(AuthenticationError, match="client_mismatch"):
        await _authenticator(tmp_path).authenticate(_bearer("opaque", *claimed))
