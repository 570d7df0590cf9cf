"""``mediator consent``: grant, list, revoke and verify through the CLI."""

from __future__ import annotations

import re
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.cli import main
from gateway.keyring import Keyring
from gateway.secrets import Secret
from tests.policies.conftest import CONFIG, student_id

STUDENT = student_id(777)

Invoke = Callable[..., tuple[int, str]]


@pytest.fixture
def invoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config)
    state = tmp_path / "state"
    monkeypatch.setenv("MEDIATOR_KEY_PASSPHRASE", "consent-cli-test-passphrase")
    Keyring.init(state / "keyring", Secret("consent-cli-test-passphrase"))
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(
            main, ["--config", str(config), "--state-dir", str(state), "consent", *args]
        )
        return result.exit_code, result.output

    return run


def granted_id(output: str) -> str:
    found = re.search(r"granted (\S+)", output)
    assert found is not None, output
    return found.group(1)


GRANT = [
    "grant",
    "--subject",
    STUDENT,
    "--client",
    "WB/GOV/WCD/kanyashree",
    "--purpose",
    "kanyashree-eligibility",
]


def test_grant_list_revoke_verify(invoke: Invoke, tmp_path: Path) -> None:
    code, out = invoke(*GRANT, "--guardian-name", "Mita Roy", "--days", "30")
    assert code == 0, out
    consent_id = granted_id(out)

    code, out = invoke("list", "--subject", STUDENT)
    assert code == 0, out
    assert "active" in out

    code, out = invoke("revoke", consent_id, "--actor", "desk")
    assert code == 0, out
    assert f"revoked {consent_id}" in out

    code, out = invoke("verify", consent_id)
    assert code == 0, out
    assert "verifies" in out


def test_minor_without_guardian_is_refused(invoke: Invoke) -> None:
    code, out = invoke(*GRANT, "--student-name", "Shovan Roy", "--minor")

    assert code == 1
    assert "guardian" in out


def test_unknown_purpose_is_refused(invoke: Invoke) -> None:
    code, out = invoke(
        "grant",
        "--subject",
        STUDENT,
        "--client",
        "WB/GOV/WCD/kanyashree",
        "--purpose",
        "marketing",
        "--guardian-name",
        "M",
    )

    assert code == 2
    assert "unknown purpose" in out


def test_tampered_history_fails_verify(invoke: Invoke, tmp_path: Path) -> None:
    _, out = invoke(*GRANT, "--guardian-name", "Mita Roy")
    consent_id = granted_id(out)
    with sqlite3.connect(tmp_path / "state" / "consent.db") as raw:
        raw.execute("UPDATE consents SET valid_until = valid_until + 1")
    raw.close()

    code, out = invoke("verify", consent_id)

    assert code == 1
    assert "does NOT verify" in out


def test_a_client_that_is_not_a_subsystem_id_is_a_usage_error(invoke: Invoke) -> None:
    code, out = invoke(
        "grant",
        "--subject",
        STUDENT,
        "--client",
        "kanyashree",
        "--purpose",
        "kanyashree-eligibility",
        "--guardian-name",
        "M",
    )

    assert code == 2
    assert "Invalid value for --client: not a subsystem id" in out


@pytest.mark.parametrize("days", ["0", "3661"])
def test_a_consent_lasts_one_day_to_ten_years(invoke: Invoke, days: str) -> None:
    code, out = invoke(*GRANT, "--guardian-name", "Mita Roy", "--days", days)

    assert code == 2
    assert "--days" in out


def test_an_adult_student_grants_their_own_consent(invoke: Invoke) -> None:
    code, out = invoke(*GRANT, "--adult", "--student-name", "Shovan Roy")
    assert code == 0, out

    _, listed = invoke("list", "--subject", STUDENT)

    assert "student:" in listed
    assert "guardian" not in listed


def test_a_student_without_consents_is_said_so(invoke: Invoke) -> None:
    assert invoke("list", "--subject", STUDENT) == (0, "no consents\n")


def test_revoking_an_unknown_consent_is_one_line(invoke: Invoke) -> None:
    code, out = invoke("revoke", "no-such-consent")

    assert (code, out) == (1, "Error: no consent has this id\n")


def test_verifying_an_unknown_consent_says_so(invoke: Invoke) -> None:
    """Not "does NOT verify": there is nothing to verify."""
    assert invoke("verify", "no-such-consent") == (
        1,
        "Error: no consent has this id\n",
    )


def test_a_wrong_passphrase_is_one_line_without_the_passphrase(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDIATOR_KEY_PASSPHRASE", "not-the-passphrase")

    code, out = invoke("list", "--subject", STUDENT)

    assert code == 1
    assert "cannot be decrypted with this passphrase" in out
    assert "not-the-passphrase" not in out
    assert "Traceback" not in out


def test_a_client_outside_the_directory_is_a_usage_error(invoke: Invoke) -> None:
    """As the consent API refuses it: a consent for nobody who can ask."""
    code, out = invoke(
        *GRANT[:4], "WB/GOV/XXX/nobody", *GRANT[5:], "--guardian-name", "M"
    )

    assert code == 2
    assert "not a subsystem of directory.yaml" in out


def test_a_grant_names_one_grantor(invoke: Invoke) -> None:
    code, out = invoke(*GRANT, "--guardian-name", "Mita Roy", "--student-name", "Rina")

    assert code == 2
    assert "not both" in out


def test_listing_for_something_that_is_not_a_student_id_is_a_usage_error(
    invoke: Invoke,
) -> None:
    """Not "no consents": nobody could have one."""
    code, out = invoke("list", "--subject", "nope")

    assert code == 2
    assert "not a student id" in out


@pytest.mark.parametrize("actor", ["\x1b[31mofficer", "x" * 201])
def test_a_revoking_actor_must_be_short_plain_text(invoke: Invoke, actor: str) -> None:
    _, out = invoke(*GRANT, "--guardian-name", "Mita Roy")

    code, out = invoke("revoke", granted_id(out), "--actor", actor)

    assert code == 1
    assert "the actor must be plain text of at most 200" in out
