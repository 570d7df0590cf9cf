"""A self-contained deployment for the demo and the end-to-end tests.

It copies ``config/`` into a work directory and gives every departmental subsystem
and the registry a fresh key pair: the public halves go into the copied
``clients/*.jwks.json``, the private halves stay with the demo's clients. The node
gets a new keyring encrypted with a random passphrase. Nothing here is a secret
worth keeping: the work directory is thrown away after the run.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from gateway.client import new_client_key
from gateway.directory import Directory
from gateway.identifiers import ClientId
from gateway.keyring import Keyring, SigningKey
from gateway.secrets import Secret

REPO_CONFIG = Path(__file__).resolve().parents[2] / "config"
REGISTRY = ClientId("WB", "GOV", "SED", "banglarshiksha")


@dataclass
class DemoDeployment:
    root: Path
    config_dir: Path
    state_dir: Path
    registry_db: Path
    registry_key_file: Path
    passphrase: Secret
    registry_port: int
    mediator_port: int
    audience: str
    client_keys: dict[ClientId, SigningKey] = field(default_factory=dict)
    registry_key: SigningKey | None = None

    @property
    def mediator_url(self) -> str:
        return f"http://127.0.0.1:{self.mediator_port}"

    @property
    def registry_url(self) -> str:
        return f"http://127.0.0.1:{self.registry_port}"

    def environ(self) -> dict[str, str]:
        """Environment for the node and the CLI: ports, host names and passphrase."""
        return {
            "REGISTRY_URL": self.registry_url,
            "MEDIATOR_HOST": f"127.0.0.1:{self.mediator_port}",
            "MEDIATOR_PUBLIC_URL": self.mediator_url,
            "MEDIATOR_AUDIENCE": self.audience,
            "MEDIATOR_KEY_PASSPHRASE": self.passphrase.reveal().decode(),
            "MEDIATOR_CONFIG": str(self.config_dir),
            "MEDIATOR_STATE_DIR": str(self.state_dir),
            # Seal often, so that a short run shows several checkpoints and the
            # consistency proofs between them.
            "MEDIATOR_CHECKPOINT_INTERVAL_S": "1",
        }

    def apply_environ(self) -> None:
        os.environ.update(self.environ())


#: Where listening ports are picked: below the kernel's ephemeral range, which
#: the source ports of outgoing connections come from.
_LISTEN_PORTS = range(20000, 32768)
#: Ports this process handed out, so that two servers never get the same one.
_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A loopback port free now, for a server this process starts next.

    Picked outside the ephemeral range: a port the kernel chose for ``bind(0)``
    can meanwhile become the source port of some outgoing connection (a client,
    a readiness probe), and the server that meant to listen on it then fails
    with "address already in use".
    """
    low, _high = _ephemeral_range()
    ports = [p for p in _LISTEN_PORTS if p < low and p not in _HANDED_OUT]
    for port in secrets.SystemRandom().sample(ports, min(len(ports), 64)):
        if _bindable(port):
            _HANDED_OUT.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        chosen: int = sock.getsockname()[1]
        return chosen


def _ephemeral_range() -> tuple[int, int]:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        low, high = (int(part) for part in text.split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def prepare(
    root: Path,
    *,
    registry_db: Path,
    source_config: Path = REPO_CONFIG,
    audience: str = "https://mediator.shiksha.example",
) -> DemoDeployment:
    """Lay out a deployment under ``root`` around an already seeded registry."""
    if root.exists():
        shutil.rmtree(root)
    config_dir, state_dir = root / "config", root / "state"
    shutil.copytree(source_config, config_dir)
    state_dir.mkdir(parents=True)

    demo = DemoDeployment(
        root=root,
        config_dir=config_dir,
        state_dir=state_dir,
        registry_db=registry_db,
        registry_key_file=root / "registry-key.pem",
        passphrase=Secret(secrets.token_urlsafe(24).encode()),
        registry_port=free_port(),
        mediator_port=free_port(),
        audience=audience,
    )
    _give_subsystems_keys(demo)
    Keyring.init(state_dir / "keyring", demo.passphrase)
    return demo


def _give_subsystems_keys(demo: DemoDeployment) -> None:
    directory = Directory.load(demo.config_dir / "directory.yaml")
    for subsystem in directory.subsystems():
        kid = f"{subsystem.id.subsystem}-demo-1"
        key, jwk = new_client_key(kid)
        jwks_file = demo.config_dir / "clients" / f"{subsystem.id.subsystem}.jwks.json"
        jwks_file.write_text(json.dumps({"keys": [jwk]}, indent=2) + "\n")
        if subsystem.id == REGISTRY:
            demo.registry_key = key
            _write_private_pem(demo.registry_key_file, key)
            demo.registry_key_file.with_suffix(".pem.kid").write_text(kid + "\n")
        else:
            demo.client_keys[subsystem.id] = key


def _write_private_pem(path: Path, key: SigningKey) -> None:
    pem = key.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
