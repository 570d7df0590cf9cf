"""``mediator clients``: keygen writes a key pair; call sends one exchange by hand."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
import pytest
import respx
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import serialization

import gateway.client
from gateway.cli import main
from gateway.client import new_client_key
from gateway.demo.run import spawn_mediator, spawn_registry, stop, wait_ready
from gateway.demo.setup import DemoDeployment, prepare
from gateway.directory import Directory
from gateway.identifiers import ClientId
from gateway.keyring import SigningKey
from gateway.signing import sign_response
from registry_stub.seed import roster_sizes

CONFIG = Path(__file__).resolve().parents[3] / "config"
KANYASHREE = "WB/GOV/WCD/kanyashree"


def _keygen(config: Path, out: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        main,
        [
            "--config",
            str(config),
            "clients",
            "keygen",
            KANYASHREE,
            "--out",
            str(out),
            *extra,
        ],
    )
    return result.exit_code, result.output


def test_new_key_is_registered_and_its_private_half_written(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config)
    out = tmp_path / "kanyashree.pem"

    code, output = _keygen(config, out, "--kid", "kanyashree-2027-1")

    assert code == 0, output
    assert out.stat().st_mode & 0o777 == 0o600
    private = serialization.load_pem_private_key(out.read_bytes(), password=None)
    directory = Directory.load(config / "directory.yaml")
    subsystem = directory.subsystem(ClientId.parse(KANYASHREE))
    assert subsystem is not None
    registered = subsystem.keys["kanyashree-2027-1"]
    assert registered.key.public_bytes_raw() == private.public_key().public_bytes_raw()  # type: ignore[union-attr]
    jwks = json.loads((config / "clients/kanyashree.jwks.json").read_text())
    assert all("d" not in key for key in jwks["keys"])


def test_an_existing_private_key_file_is_never_overwritten(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config)
    out = tmp_path / "existing.pem"
    out.write_text("keep me")

    code, output = _keygen(config, out)

    assert code != 0
    assert "not overwriting" in output
    assert out.read_text() == "keep me"


def test_a_repeated_key_id_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config)

    code, output = _keygen(config, tmp_path / "a.pem", "--kid", "kanyashree-2026-1")

    assert code != 0
    assert "already in" in output


# -- clients call -----------------------------------------------------------------

SABOOJSATHI = "WB/GOV/BCW/saboojsathi"
NODE = "http://127.0.0.1:8700"
AUDIENCE = "https://mediator.shiksha.example"
ROSTER = "/r1/WB/GOV/SED/banglarshiksha/students/roster/19010100101"


@pytest.fixture
def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of config/ with a new SaboojSathi key; its PEM is ``saboojsathi.pem``
    beside it. node.yaml names the node at 127.0.0.1:8700."""
    monkeypatch.setenv("MEDIATOR_PUBLIC_URL", NODE)
    monkeypatch.setenv("MEDIATOR_AUDIENCE", AUDIENCE)
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config)
    argv = ["--config", str(config), "clients", "keygen", SABOOJSATHI]
    out = ["--out", str(tmp_path / "saboojsathi.pem"), "--kid", "saboojsathi-cli-1"]
    result = CliRunner().invoke(main, [*argv, *out])
    assert result.exit_code == 0, result.output
    return config


@pytest.fixture
def node_key() -> tuple[SigningKey, dict[str, Any]]:
    """The mocked node's signing key and its JWK."""
    return new_client_key("mediator-1-test")


def _call(config: Path, method: str, path: str, *extra: str) -> Result:
    key = str(config.parent / "saboojsathi.pem")
    argv = ["--config", str(config), "clients", "call", SABOOJSATHI, method, path]
    return CliRunner().invoke(main, [*argv, "--key", key, *extra])


def _answer(
    key: SigningKey, status: int, document: Any, headers: dict[str, str] | None = None
) -> httpx.Response:
    """A JSON answer signed with ``key``, as the node signs every response."""
    body = orjson.dumps(document)
    fields = {
        "content-type": "application/json",
        "x-road-id": "msg-1",
        **(headers or {}),
    }
    fields.update(sign_response(key, status=status, headers=fields, body=body))
    return httpx.Response(status, headers=fields, content=body)


def _token(request: httpx.Request) -> str:
    scheme, _, token = request.headers["authorization"].partition(" ")
    assert scheme == "Bearer"
    return token


def _claims(config: Path, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and verified claims of an assertion, with the registered key."""
    directory = Directory.load(config / "directory.yaml")
    subsystem = directory.subsystem(ClientId.parse(SABOOJSATHI))
    assert subsystem is not None
    header = jwt.get_unverified_header(token)
    public = subsystem.keys[header["kid"]].key
    claims = jwt.decode(token, public, algorithms=["EdDSA"], audience=AUDIENCE)
    return header, claims


ROSTER_ANSWER = {"beneficiaries": [{"uid": "WB-1", "beneficiary_name": "Rina Das"}]}


def _roster_call(
    deployment: Path, node_key: tuple[SigningKey, dict[str, Any]]
) -> tuple[Result, httpx.Request]:
    """The roster read with its purpose, from a node that signs its answer."""
    key, jwk = node_key
    with respx.mock(assert_all_called=True) as node:
        node.get(f"{NODE}/.well-known/jwks.json").respond(json={"keys": [jwk]})
        answer = _answer(key, 200, ROSTER_ANSWER)
        route = node.get(f"{NODE}{ROSTER}").mock(return_value=answer)

        result = _call(deployment, "GET", ROSTER, "--purpose", "saboojsathi-roster")

    return result, route.calls.last.request


def test_call_sends_an_assertion_of_the_registered_key(
    deployment: Path, node_key: tuple[SigningKey, dict[str, Any]]
) -> None:
    result, request = _roster_call(deployment, node_key)

    assert result.exit_code == 0, result.output
    header, claims = _claims(deployment, _token(request))
    assert header["kid"] == "saboojsathi-cli-1"
    assert claims["iss"] == claims["sub"] == SABOOJSATHI
    assert request.headers["x-road-client"] == SABOOJSATHI
    assert request.headers["x-road-purpose"] == "saboojsathi-roster"


def test_call_shows_status_signature_and_the_body_as_json(
    deployment: Path, node_key: tuple[SigningKey, dict[str, Any]]
) -> None:
    result, request = _roster_call(deployment, node_key)

    assert result.exit_code == 0, result.output
    assert "status:     200 OK" in result.stderr
    assert "signature:  verified" in result.stderr
    assert "message id: msg-1" in result.stderr
    assert "error type" not in result.stderr
    assert orjson.loads(result.stdout) == ROSTER_ANSWER
    assert '\n  "beneficiaries"' in result.stdout  # indented
    assert _token(request) not in result.output
    private = (deployment.parent / "saboojsathi.pem").read_text().splitlines()[1]
    assert private not in result.output


def test_each_call_carries_a_new_assertion(
    deployment: Path, node_key: tuple[SigningKey, dict[str, Any]]
) -> None:
    key, jwk = node_key
    with respx.mock(assert_all_called=True) as node:
        node.get(f"{NODE}/.well-known/jwks.json").respond(json={"keys": [jwk]})
        route = node.get(f"{NODE}{ROSTER}").mock(
            side_effect=lambda _request: _answer(key, 200, {})
        )

        for _ in range(2):
            assert _call(deployment, "GET", ROSTER).exit_code == 0

    first, second = (_claims(deployment, _token(c.request))[1] for c in route.calls)
    assert first["jti"] != second["jti"]


def test_a_refused_call_exits_non_zero_and_names_the_error_type(
    deployment: Path, node_key: tuple[SigningKey, dict[str, Any]]
) -> None:
    key, jwk = node_key
    error = {
        "type": "Client.purpose_required",
        "message": "The service needs a declared purpose",
        "detail": "msg-1",
    }
    refusal = _answer(key, 403, error, {"x-road-error": "Client.purpose_required"})
    with respx.mock(assert_all_called=True) as node:
        node.get(f"{NODE}/.well-known/jwks.json").respond(json={"keys": [jwk]})
        route = node.get(f"{NODE}{ROSTER}").mock(return_value=refusal)

        result = _call(deployment, "GET", ROSTER)

    assert result.exit_code == 1
    assert "status:     403 Forbidden" in result.stderr
    assert "error type: Client.purpose_required" in result.stderr
    assert "signature:  verified" in result.stderr
    assert orjson.loads(result.stdout) == error
    assert _token(route.calls.last.request) not in result.output


def test_an_answer_signed_by_another_key_is_not_verified(
    deployment: Path, node_key: tuple[SigningKey, dict[str, Any]]
) -> None:
    _key, jwk = node_key
    impostor, _jwk = new_client_key(jwk["kid"])
    with respx.mock(assert_all_called=True) as node:
        node.get(f"{NODE}/.well-known/jwks.json").respond(json={"keys": [jwk]})
        node.get(f"{NODE}{ROSTER}").mock(return_value=_answer(impostor, 200, {}))

        result = _call(deployment, "GET", ROSTER)

    assert "signature:  NOT verified" in result.stderr
    assert result.exit_code == 1, "a 2xx nobody vouches for is not a success"


def _jwks_file(deployment: Path, *jwks: dict[str, Any]) -> str:
    path = deployment.parent / "node-jwks.json"
    path.write_text(json.dumps({"keys": list(jwks)}))
    return str(path)


def test_node_keys_from_a_file_are_used_without_asking_the_node(
    deployment: Path, node_key: tuple[SigningKey, dict[str, Any]]
) -> None:
    key, jwk = node_key
    with respx.mock(assert_all_called=False) as node:
        roster = node.get(f"{NODE}{ROSTER}").mock(return_value=_answer(key, 200, {}))
        anything_else = node.route().respond(500)

        result = _call(
            deployment, "GET", ROSTER, "--node-jwks", _jwks_file(deployment, jwk)
        )

    assert result.exit_code == 0, result.output
    assert "signature:  verified" in result.stderr
    assert roster.call_count == 1
    assert not anything_else.called, "the node's own JWKS was not fetched"


def test_a_node_that_publishes_an_impostor_key_is_not_believed(
    deployment: Path, node_key: tuple[SigningKey, dict[str, Any]]
) -> None:
    """Keys obtained out of band decide, not what the answering address serves."""
    _key, jwk = node_key
    impostor, impostor_jwk = new_client_key(jwk["kid"])
    with respx.mock(assert_all_called=False) as node:
        node.get(f"{NODE}/.well-known/jwks.json").respond(json={"keys": [impostor_jwk]})
        node.get(f"{NODE}{ROSTER}").mock(return_value=_answer(impostor, 200, {}))

        published = _call(deployment, "GET", ROSTER)
        trusted = _call(
            deployment, "GET", ROSTER, "--node-jwks", _jwks_file(deployment, jwk)
        )

    assert published.exit_code == 0, published.output
    assert trusted.exit_code == 1
    assert "signature:  NOT verified" in trusted.stderr


def test_an_unusable_node_jwks_file_is_refused_before_sending(
    deployment: Path,
) -> None:
    path = deployment.parent / "node-jwks.json"
    path.write_text('{"keys": [{"kty": "OKP"}]}')
    with respx.mock(assert_all_called=False) as node:
        anything = node.route().respond(500)
        result = _call(deployment, "GET", ROSTER, "--node-jwks", str(path))

    assert result.exit_code == 2
    assert "not a usable JWKS" in result.output
    assert not anything.called


def test_data_from_a_file_is_sent_as_the_json_body(
    deployment: Path, node_key: tuple[SigningKey, dict[str, Any]]
) -> None:
    key, jwk = node_key
    path = "/r1/WB/GOV/SED/banglarshiksha/students/beneficiary-check"
    document = {"beneficiaryId": "WB-1", "bankAccountNo": "0123456789"}
    data = deployment.parent / "body.json"
    data.write_bytes(orjson.dumps(document))
    with respx.mock(assert_all_called=True) as node:
        node.get(f"{NODE}/.well-known/jwks.json").respond(json={"keys": [jwk]})
        route = node.post(f"{NODE}{path}").mock(return_value=_answer(key, 200, {}))

        result = _call(deployment, "post", path, "--data", f"@{data}")

    assert result.exit_code == 0, result.output
    request = route.calls.last.request
    assert request.headers["content-type"] == "application/json"
    assert orjson.loads(request.content) == document


@pytest.mark.parametrize("method", ["GET", "head", "DELETE"])
def test_data_on_a_bodyless_method_is_refused_before_sending(
    deployment: Path, method: str
) -> None:
    with respx.mock(assert_all_called=False) as node:
        anything = node.route().respond(500)
        result = _call(deployment, method, ROSTER, "--data", "{}")

    assert result.exit_code == 2
    assert f"{method.upper()} takes no body" in result.output
    assert not anything.called


@pytest.mark.parametrize(
    "path",
    ["/r1/WB/GOV/SED/banglarshiksha", "/WB/GOV/SED/banglarshiksha/students", "r1/x"],
)
def test_a_path_that_names_no_service_is_refused_before_sending(
    deployment: Path, path: str
) -> None:
    with respx.mock(assert_all_called=False) as node:
        result = _call(deployment, "GET", path)

    assert result.exit_code == 2
    assert "/r1/INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE" in result.output
    assert not node.calls


def test_a_key_the_directory_does_not_list_needs_its_kid(deployment: Path) -> None:
    stray, _jwk = new_client_key("stray-1")
    pem = stray.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (deployment.parent / "saboojsathi.pem").write_bytes(pem)

    with respx.mock(assert_all_called=False) as node:
        result = _call(deployment, "GET", ROSTER)

    assert result.exit_code == 1
    assert "is not registered for WB/GOV/BCW/saboojsathi" in result.output
    assert "--kid" in result.output
    assert not node.calls


def test_an_unreachable_node_is_one_line_without_the_assertion(
    deployment: Path,
) -> None:
    with respx.mock(assert_all_called=True) as node:
        node.get(f"{NODE}/.well-known/jwks.json").mock(
            side_effect=httpx.ConnectError("connection refused")
        )

        result = _call(deployment, "GET", ROSTER)

    assert result.exit_code == 1
    assert "no answer from http://127.0.0.1:8700" in result.output
    assert "Bearer" not in result.output


# -- clients call against real servers --------------------------------------------


@pytest.fixture
def served(tmp_path: Path, registry_db: Path) -> Iterator[DemoDeployment]:
    """The registry and ``mediator serve`` on a fresh deployment, on loopback."""
    demo = prepare(tmp_path / "deployment", registry_db=registry_db)
    (demo.root / "logs").mkdir()
    pem = demo.client_keys[ClientId.parse(SABOOJSATHI)].private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (demo.config_dir.parent / "saboojsathi.pem").write_bytes(pem)
    registry = spawn_registry(demo)
    mediator = spawn_mediator(demo)
    try:
        wait_ready(f"{demo.registry_url}/api/openapi.json", registry, "registry")
        wait_ready(f"{demo.mediator_url}/admin/health", mediator, "mediator")
        yield demo
    finally:
        stop(mediator, "mediator")
        stop(registry, "registry")


@pytest.mark.sockets
def test_call_through_a_served_node(
    served: DemoDeployment, registry_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A roster with the purpose is answered and signed; without it, refused."""
    for name, value in served.environ().items():
        monkeypatch.setenv(name, value)
    minted: list[str] = []
    make = gateway.client.make_assertion

    def recorded(**kwargs: Any) -> str:
        minted.append(make(**kwargs))
        return minted[-1]

    monkeypatch.setattr(gateway.client, "make_assertion", recorded)
    [(udise, count)] = roster_sizes(registry_db, klass=9, limit=1).items()
    path = f"/r1/WB/GOV/SED/banglarshiksha/students/roster/{udise}"

    answered = _call(served.config_dir, "GET", path, "--purpose", "saboojsathi-roster")
    refused = _call(served.config_dir, "GET", path)
    jwks = str(served.state_dir / "keyring" / "jwks.json")
    pinned = _call(served.config_dir, "GET", path, "--node-jwks", jwks)

    assert answered.exit_code == 0, answered.output
    assert "status:     200 OK" in answered.stderr
    assert "signature:  verified" in answered.stderr
    assert len(orjson.loads(answered.stdout)["beneficiaries"]) == count
    assert refused.exit_code == 1
    assert "error type: Client.purpose_required" in refused.stderr
    assert "signature:  verified" in refused.stderr
    assert "signature:  verified" in pinned.stderr, "the keyring's own JWKS"
    assert len(minted) == 3
    assert not any(token in answered.output + refused.output for token in minted)
