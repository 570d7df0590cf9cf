"""``mediator clients keygen``: a key pair for a departmental system (or a provider).

The private key is written for the subsystem's operators to install on their own
system; the public key is added to the subsystem's JWKS file named by ``keys:`` in
``directory.yaml``, which is all the node needs. The node never keeps the private
half.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from gateway.cli import CliContext, pass_cli


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
