"""``mediator clients``: a subsystem's keys, and one exchange sent by hand.

``keygen`` writes a key pair for a departmental system (or a provider). The private
key is written for the subsystem's operators to install on their own system; the
public key is added to the subsystem's JWKS file named by ``keys:`` in
``directory.yaml``, which is all the node needs. The node never keeps the private
half.

``call`` sends one request through a node as a subsystem, with that private key,
the way :class:`gateway.client.DepartmentClient` sends every request.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gateway.cli import CliContext, pass_cli

if TYPE_CHECKING:
    from gateway.client import Answer, DepartmentClient
    from gateway.directory import RegisteredKey
    from gateway.identifiers import ClientId, ServiceId
    from gateway.keyring import SigningKey

#: Methods ``clients call`` sends; the node's access rights decide the rest.
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


@click.group("clients")
def command() -> None:
    """Keys of the subsystems in the directory."""


@command.command("keygen")
@click.argument("subsystem")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the new private key (PKCS#8 PEM, mode 0600).",
)
@click.option("--kid", default=None, help="Key id (default: SUBSYSTEM-code-N).")
@pass_cli
def keygen(ctx: CliContext, subsystem: str, out: Path, kid: str | None) -> None:
    """Make an Ed25519 key pair for SUBSYSTEM (INSTANCE/CLASS/MEMBER/SUBSYSTEM)."""
    from cryptography.hazmat.primitives import serialization

    from gateway.client import new_client_key
    from gateway.errors import ConfigError, MediatorError
    from gateway.identifiers import ClientId
    from gateway.settings import DirectoryFile
    from gateway.yamlconf import load_model

    try:
        client = ClientId.parse(subsystem)
        directory = load_model(ctx.config_dir / "directory.yaml", DirectoryFile)
    except (MediatorError, ConfigError) as exc:
        raise click.ClickException(f"{subsystem}: {exc}") from exc
    jwks_name = _jwks_file(directory, client)
    if jwks_name is None:
        raise click.ClickException(
            f"{client} has no `keys:` JWKS file in directory.yaml; add one first"
        )
    if out.exists():
        raise click.ClickException(f"{out} exists; not overwriting a private key")

    jwks_path = ctx.config_dir / jwks_name
    document = _read_jwks(jwks_path)
    kid = kid or f"{client.subsystem}-{len(document['keys']) + 1}"
    if any(key.get("kid") == kid for key in document["keys"]):
        raise click.ClickException(f"key id {kid!r} is already in {jwks_path}")

    key, jwk = new_client_key(kid)
    pem = key.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    document["keys"].append(jwk)
    jwks_path.parent.mkdir(parents=True, exist_ok=True)
    jwks_path.write_text(json.dumps(document, indent=2) + "\n")
    click.echo(f"{client}: new key {kid}")
    click.echo(
        f"  private key: {out} (install it on the subsystem, then delete it here)"
    )
    click.echo(f"  public key added to {jwks_path}; reload or restart the node")


def _jwks_file(directory: Any, client: Any) -> str | None:
    for member in directory.members:
        for entry in member.subsystems:
            if f"{member.id}/{entry.code}" == str(client):
                keys: str | None = entry.keys
                return keys
    return None


def _read_jwks(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"keys": []}
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"{path} is not a readable JWKS") from exc
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise click.ClickException(f"{path} has no 'keys' list")
    return document


@command.command("call")
@click.argument("subsystem")
@click.argument(
    "method", metavar="METHOD", type=click.Choice(_METHODS, case_sensitive=False)
)
@click.argument("target", metavar="PATH")
@click.option(
    "--key",
    "key_file",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The subsystem's private key: the PEM file `clients keygen` wrote.",
)
@click.option(
    "--kid",
    default=None,
    help="The key's registered id (default: the key of SUBSYSTEM in the "
    "directory with the same public half).",
)
@click.option(
    "--url",
    "node_url",
    default=None,
    help="The node's base URL (default: public_url of node.yaml).",
)
@click.option(
    "--audience",
    default=None,
    help="The audience the assertion names (default: auth.audience of node.yaml).",
)
@click.option("--purpose", default=None, help="The purpose, sent as X-Road-Purpose.")
@click.option(
    "--data", default=None, help="A JSON request body, or @FILE to read it from."
)
@click.option(
    "--node-jwks",
    "node_jwks",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="The node's public keys (JWKS) as obtained out of band, e.g. its "
    "keyring/jwks.json; default: what the node publishes, fetched from it.",
)
@click.option(
    "--timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0.1, max=600),
    help="Seconds to wait for the node.",
)
@pass_cli
def call(
    ctx: CliContext,
    *,
    subsystem: str,
    method: str,
    target: str,
    key_file: Path,
    kid: str | None,
    node_url: str | None,
    audience: str | None,
    purpose: str | None,
    data: str | None,
    node_jwks: Path | None,
    timeout: float,
) -> None:
    """Send one request through the node as SUBSYSTEM and show the answer.

    METHOD is GET, HEAD, POST, PUT, PATCH or DELETE. PATH is the X-Road REST
    path, /r1/INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE followed by the endpoint
    and any query, e.g. /r1/WB/GOV/SED/banglarshiksha/students/roster/19130256001.

    The request carries a fresh one-time assertion signed with the key, and the
    answer's signature is checked against the node's keys: those in --node-jwks,
    else the JWKS the node publishes (which shows that the answer matches what
    that address serves, not which node it is: use --node-jwks for that).
    Status, error type and signature go to stderr, the body to stdout. Exits 0
    on a 2xx answer whose signature verified, 1 otherwise. The assertion and the
    key are never printed.
    """
    import asyncio

    import httpx

    client = _client_id(subsystem)
    service, endpoint, query = _target(target)
    body = _body(data)
    from gateway.framing import BODYLESS_METHODS

    if body is not None and method.upper() in BODYLESS_METHODS:
        # The node refuses them (body_not_allowed): said here, before signing.
        raise click.BadParameter(f"{method.upper()} takes no body", param_hint="--data")
    key = _client_key(ctx, client, key_file, kid)
    trusted = _trusted_node_keys(node_jwks) if node_jwks is not None else None
    if node_url is None or audience is None:
        settings = _node_settings(ctx)
        node_url = node_url or str(settings.public_url)
        audience = audience or settings.auth.audience

    send = _send(
        client,
        key,
        node_url=node_url,
        audience=audience,
        wait_s=timeout,
        method=method.upper(),
        service=service,
        endpoint=endpoint,
        query=query,
        body=body,
        purpose=purpose,
        node_keys=trusted,
    )
    try:
        answer, note = asyncio.run(send)
    except httpx.HTTPError as exc:
        raise click.ClickException(
            f"no answer from {node_url}: {type(exc).__name__}: {exc}"
        ) from exc
    _show(answer, note)
    # An answer the node's keys do not vouch for is not taken as an answer.
    if not 200 <= answer.status < 300 or not answer.signature_ok:
        raise SystemExit(1)


def _client_id(text: str) -> ClientId:
    from gateway.errors import MediatorError
    from gateway.identifiers import ClientId

    try:
        return ClientId.parse(text)
    except MediatorError as exc:
        raise click.BadParameter(
            "not INSTANCE/CLASS/MEMBER/SUBSYSTEM", param_hint="SUBSYSTEM"
        ) from exc


def _target(text: str) -> tuple[ServiceId, str, dict[str, str]]:
    """The service id, the endpoint path after it, and the query of PATH."""
    from urllib.parse import parse_qsl

    from gateway.errors import MediatorError
    from gateway.identifiers import ServiceId
    from gateway.paths import PREFIX

    path, _, query = text.partition("?")
    parts = path.removeprefix(PREFIX).split("/", 5) if path.startswith(PREFIX) else []
    try:
        service = ServiceId.parse("/".join(parts[:5]))
    except MediatorError as exc:
        raise click.BadParameter(
            f"not {PREFIX}INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE[/ENDPOINT]",
            param_hint="PATH",
        ) from exc
    endpoint = "/" + parts[5] if len(parts) == 6 else ""
    return service, endpoint, dict(parse_qsl(query, keep_blank_values=True))


def _body(data: str | None) -> Any:
    """The parsed JSON of ``--data`` (inline, or ``@FILE``), or None."""
    import orjson

    if data is None:
        return None
    if data.startswith("@"):
        try:
            raw = Path(data[1:]).read_bytes()
        except OSError as exc:
            raise click.BadParameter(
                f"cannot read {data[1:]}", param_hint="--data"
            ) from exc
    else:
        raw = data.encode()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise click.BadParameter("not JSON", param_hint="--data") from exc


def _client_key(
    ctx: CliContext, client: ClientId, path: Path, kid: str | None
) -> SigningKey:
    """The key in ``path`` under ``kid``, or under the id the directory registers
    its public half with for ``client``."""
    import dataclasses

    from cryptography.hazmat.primitives import serialization

    from gateway.client import read_client_key
    from gateway.directory import Directory
    from gateway.errors import ConfigError

    try:
        key = read_client_key(path, kid or "")
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--key") from exc
    if kid is not None:
        return key

    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    mine = key.public_key().public_bytes(*spki)
    subsystem = Directory.load(ctx.config_dir / "directory.yaml").subsystem(client)
    registered = subsystem.keys.values() if subsystem is not None else ()
    for entry in registered:
        if entry.key.public_bytes(*spki) == mine:
            return dataclasses.replace(key, kid=entry.kid)
    raise click.ClickException(
        f"the key in {path} is not registered for {client} in "
        f"{ctx.config_dir / 'directory.yaml'}; name its id with --kid"
    )


def _node_settings(ctx: CliContext) -> Any:
    from gateway.settings import NodeSettings
    from gateway.yamlconf import load_model

    path = ctx.config_dir / "node.yaml"
    if not path.is_file():
        raise click.ClickException(f"no {path}: give --url and --audience")
    return load_model(path, NodeSettings)


async def _send(
    client: ClientId,
    key: SigningKey,
    *,
    node_url: str,
    audience: str,
    wait_s: float,
    method: str,
    service: ServiceId,
    endpoint: str,
    query: dict[str, str],
    body: Any,
    purpose: str | None,
    node_keys: dict[str, RegisteredKey] | None,
) -> tuple[Answer, str | None]:
    """The answer to one request, and why its signature could not be checked.

    With ``node_keys`` (obtained out of band) the node's JWKS is not fetched.
    """
    import httpx

    from gateway.client import DepartmentClient

    # The node's URL is the only place the assertion goes: no proxy from the
    # environment, no redirect followed.
    async with httpx.AsyncClient(
        timeout=wait_s, trust_env=False, follow_redirects=False
    ) as http:
        department = DepartmentClient(
            client_id=client,
            key=key,
            audience=audience,
            base_url=node_url,
            http=http,
            node_keys=node_keys,
        )
        note = None if node_keys is not None else await _load_node_keys(department)
        answer = await department.call(
            method, service, endpoint, json=body, purpose=purpose, query=query
        )
    return answer, note


def _trusted_node_keys(path: Path) -> dict[str, RegisteredKey]:
    """The node's public keys from a JWKS file; BadParameter if unusable."""
    from gateway.clientkeys import parse_jwks
    from gateway.errors import ConfigError

    try:
        return parse_jwks(json.loads(path.read_text(encoding="utf-8")), str(path))
    except (OSError, ValueError, ConfigError) as exc:
        raise click.BadParameter(
            f"{path} is not a usable JWKS", param_hint="--node-jwks"
        ) from exc


async def _load_node_keys(department: DepartmentClient) -> str | None:
    """Fetch the node's published keys; None, or why they are not usable."""
    import httpx

    from gateway.errors import ConfigError

    try:
        await department.load_node_keys()
    except httpx.HTTPStatusError as exc:
        return f"the node's keys could not be fetched (HTTP {exc.response.status_code})"
    except (ConfigError, ValueError):
        return "the node's published keys are not a usable JWKS"
    return None


def _show(answer: Answer, note: str | None) -> None:
    """Status, error type and signature on stderr; the body on stdout."""
    import httpx

    from gateway import wire

    phrase = httpx.codes.get_reason_phrase(answer.status)
    click.echo(f"status:     {answer.status} {phrase}".rstrip(), err=True)
    if answer.error_type is not None:
        click.echo(f"error type: {answer.error_type}", err=True)
    signature = "verified" if answer.signature_ok else "NOT verified"
    click.echo(f"signature:  {signature}" + (f": {note}" if note else ""), err=True)
    message_id = answer.headers.get(wire.XROAD_ID)
    if message_id is not None:
        click.echo(f"message id: {message_id}", err=True)
    text = _body_text(answer)
    if text:
        click.echo(text)


def _body_text(answer: Answer) -> str:
    """The body, indented when it is JSON."""
    import orjson

    if not answer.body:
        return ""
    if "json" in answer.headers.get("content-type", ""):
        try:
            return orjson.dumps(answer.json(), option=orjson.OPT_INDENT_2).decode()
        except orjson.JSONDecodeError:
            pass
    return answer.body.decode("utf-8", errors="replace")
