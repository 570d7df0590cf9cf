"""``registry-stub``: seed a registry database and serve it on loopback."""

from __future__ import annotations

from pathlib import Path

import click
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.errors import ConfigError
from gateway.keyring import SigningKey
from gateway.signing import sign_response
from registry_stub.app import ResponseSigner, create_app
from registry_stub.seed import seed_database


@click.group()
def main() -> None:
    """A runnable central school registry with seeded synthetic data."""


@main.command()
@click.option(
    "--db", "db", type=click.Path(dir_okay=False, path_type=Path), required=True
)
@click.option("--students", default=20_000, show_default=True, type=click.IntRange(0))
@click.option("--schools", default=200, show_default=True, type=click.IntRange(2))
@click.option("--seed", default=2026, show_default=True, type=int)
def seed(db: Path, students: int, schools: int, seed: int) -> None:
    """Write a fresh registry database (an existing file is replaced)."""
    try:
        summary = seed_database(db, students=students, schools=schools, seed=seed)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    print(
        f"seeded {db}: {summary.schools} schools, {summary.teachers} teachers,"
        f" {summary.students} students in {summary.seconds:.1f} s,"
        f" {summary.size_bytes / 1e6:.1f} MB"
    )


@main.command()
@click.option(
    "--db",
    "db",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    required=True,
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8701, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--signing-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="PKCS#8 PEM of the registry's Ed25519 key; responses are then signed.",
)
@click.option(
    "--key-id",
    default=None,
    help="The signing key's id as registered in the directory (default: PATH.kid).",
)
def serve(
    db: Path, host: str, port: int, signing_key: Path | None, key_id: str | None
) -> None:
    """Serve the registry API with uvicorn (uvloop, httptools)."""
    try:
        signer = _response_signer(signing_key, key_id) if signing_key else None
        app = create_app(db, response_signer=signer)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    uvicorn.run(
        app, host=host, port=port, loop="uvloop", http="httptools", log_level="warning"
    )


def _response_signer(path: Path, key_id: str | None) -> ResponseSigner:
    """Sign responses with the key in ``path`` under ``key_id``.

    Without ``key_id`` the id is read from a file ``PATH.kid`` beside the key;
    raises ConfigError if neither names it.
    """
    kid_file = path.with_suffix(path.suffix + ".kid")
    if key_id is None and kid_file.exists():
        key_id = kid_file.read_text().strip()
    if not key_id:
        raise ConfigError(str(path), "name the key's registered id with --key-id")
    kid = key_id
    private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(private, ed25519.Ed25519PrivateKey):
        raise ConfigError(str(path), "the registry signs with an Ed25519 key")
    key = SigningKey(kid, "ed25519", private)

    def sign(status: int, headers: dict[str, str], body: bytes) -> dict[str, str]:
        return sign_response(key, status=status, headers=headers, body=body)

    return sign
