"""The grant call the consent stores share: one grant, handed to the store's own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from policies.consent import ConsentStore
from policies.consentgrant import GrantApi
from policies.consentrecords import ConsentError, ConsentRecord, new_record
from policies.consentsign import RevisionSigner
from policies.purposes import Purpose
from tests.policies.test_consent import KANYASHREE, NOW, STUDENT, grant_args
from tests.policies.test_consentsign import Signer

pytestmark = pytest.mark.anyio


class Recording(GrantApi):
    """A store that makes the record in memory and keeps each grant it was given."""

    def __init__(self, signer: RevisionSigner | None = None) -> None:
        self._signer = signer
        self.grants: list[dict[str, Any]] = []

    async def _grant(self, grant: dict[str, Any]) -> ConsentRecord:
        self.grants.append(grant)
        return new_record(grant)


async def test_every_argument_reaches_the_store_in_one_grant(
    kanyashree: Purpose,
) -> None:
    store = Recording()
    args = grant_args(kanyashree)

    await store.grant(**args)

    assert store.grants == [args]


async def test_the_grant_answers_with_the_stores_record(kanyashree: Purpose) -> None:
    store = Recording()

    record = await store.grant(**grant_args(kanyashree))

    assert (record.subject, record.client, record.purpose_id) == (
        STUDENT,
        str(KANYASHREE),
        kanyashree.id,
    )
    assert (record.granted_by.role, record.valid_from, record.state) == (
        "guardian",
        NOW - 86400.0,
        "active",
    )


async def test_a_grant_the_store_refuses_is_a_consent_error(
    kanyashree: Purpose,
) -> None:
    """A minor cannot consent alone: the store's refusal reaches the caller."""
    store = Recording()

    with pytest.raises(ConsentError, match="must be granted by a guardian"):
        await store.grant(**grant_args(kanyashree, granted_by_role="student"))


async def test_the_arguments_are_keyword_only(kanyashree: Purpose) -> None:
    """A subject and a client given out of order cannot be taken for each other."""
    store = Recording()

    with pytest.raises(TypeError, match="positional"):
        await store.grant(STUDENT, KANYASHREE)  # type: ignore[call-arg]

    assert store.grants == []


@pytest.mark.parametrize(("signer", "signed"), [(None, False), (Signer(), True)])
def test_a_store_is_signed_when_it_has_a_signer(
    signer: RevisionSigner | None, signed: bool
) -> None:
    assert Recording(signer).signed is signed


async def test_the_sqlite_store_says_it_is_signed(tmp_path: Path) -> None:
    store = await ConsentStore.open(tmp_path / "consent.db", signer=Signer())
    try:
        assert store.signed
    finally:
        await store.close()


async def test_a_store_without_its_own_grant_refuses_to_record(
    kanyashree: Purpose,
) -> None:
    """Nothing is granted by the shared call alone."""
    with pytest.raises(NotImplementedError):
        await GrantApi().grant(**grant_args(kanyashree))
