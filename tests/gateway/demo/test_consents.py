"""The demo's seeded consents: signed by the node, so their histories verify."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.cli import main
from gateway.demo.consents import node_keyring, record_consents
from gateway.demo.setup import DemoDeployment, prepare
from policies.consent import ConsentStore
from registry_stub.seed import sample_students

pytestmark = pytest.mark.anyio


@pytest.fixture
def demo(
    tmp_path: Path, registry_db: Path, monkeypatch: pytest.MonkeyPatch
) -> DemoDeployment:
    deployment = prepare(tmp_path / "deployment", registry_db=registry_db)
    for name, value in deployment.environ().items():
        monkeypatch.setenv(name, value)
    return deployment


@pytest.fixture
def seeded(demo: DemoDeployment) -> dict[str, str]:
    """An active, a revoked and a withheld consent, seeded as the demo seeds them."""
    first, second, third = sample_students(demo.registry_db, gender="F", limit=3)
    return record_consents(
        demo,
        [
            (first["student_id"], first, "active"),
            (second["student_id"], second, "revoked"),
            (third["student_id"], third, "none"),
        ],
    )


async def test_seeded_consents_verify_with_the_nodes_signatures(
    demo: DemoDeployment, seeded: dict[str, str]
) -> None:
    keyring = node_keyring(demo)

    store = await ConsentStore.open(demo.state_dir / "consent.db", signer=keyring)
    try:
        verified = [await store.verify_history(cid) for cid in seeded.values()]
        histories = [await store.history(cid) for cid in seeded.values()]
    finally:
        await store.close()

    assert verified == [True, True]
    assert [[r.state for r in h] for h in histories] == [
        ["active"],
        ["active", "revoked"],
    ]
    kids = {r.kid for history in histories for r in history}
    assert kids == {keyring.key_id}


def test_mediator_consent_verify_accepts_a_seeded_history(
    demo: DemoDeployment, seeded: dict[str, str]
) -> None:
    runner = CliRunner()

    for consent_id in seeded.values():
        result = runner.invoke(
            main,
            [
                "--config", str(demo.config_dir), "--state-dir", str(demo.state_dir),
                "consent", "verify", consent_id,
            ],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert f"history of {consent_id} verifies" in result.output
