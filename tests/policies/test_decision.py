"""The consent step: which purposes need a record and what a missing one means."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.errors import AccessDeniedError, Reason
from gateway.identifiers import ClientId
from policies.consent import ConsentStore
from policies.decision import check_consent
from policies.purposes import Purpose, PurposeSet
from tests.policies.conftest import student_id

KANYASHREE = ClientId.parse("WB/GOV/WCD/kanyashree")
STUDENT = student_id(42)
NOW = 1_796_378_400.0


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[ConsentStore]:
    opened = await ConsentStore.open(tmp_path / "consent.db")
    yield opened
    await opened.close()


def purpose(purposes: PurposeSet, purpose_id: str) -> Purpose:
    found = purposes.get(purpose_id)
    assert found is not None
    return found


@pytest.mark.anyio
@pytest.mark.parametrize("purpose_id", ["saboojsathi-roster", "ifms-beneficiary-check"])
async def test_public_task_needs_no_consent(
    store: ConsentStore, purposes: PurposeSet, purpose_id: str
) -> None:
    checked = await check_consent(
        store, purpose(purposes, purpose_id), STUDENT, KANYASHREE, NOW
    )

    assert checked is None


@pytest.mark.anyio
async def test_active_consent_is_returned(
    store: ConsentStore, purposes: PurposeSet
) -> None:
    kanyashree = purpose(purposes, "kanyashree-eligibility")
    granted = await store.grant(
        subject=STUDENT,
        client=KANYASHREE,
        purpose=kanyashree,
        granted_by_role="guardian",
        granted_by_name="Mita Roy",
        subject_is_minor=True,
        valid_from=NOW - 1,
        valid_until=NOW + 1,
        actor="test",
    )

    checked = await check_consent(store, kanyashree, STUDENT, KANYASHREE, NOW)

    assert checked == granted


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("subject", "log_reason"),
    [
        (STUDENT, "no_active_consent"),
        (None, "subject_missing"),
        ("", "subject_missing"),
    ],
)
async def test_consent_purpose_without_record_is_denied(
    store: ConsentStore, purposes: PurposeSet, subject: str | None, log_reason: str
) -> None:
    kanyashree = purpose(purposes, "kanyashree-eligibility")

    with pytest.raises(AccessDeniedError) as caught:
        await check_consent(store, kanyashree, subject, KANYASHREE, NOW)

    assert caught.value.reason is Reason.CONSENT_REQUIRED
    assert caught.value.log_reason == log_reason
