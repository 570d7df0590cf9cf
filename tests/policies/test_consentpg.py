"""The consent store in PostgreSQL: the SQLite store's behaviour, shared by nodes."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import anyio
import asyncpg
import pytest

from gateway.errors import NodeError
from policies.consent import ConsentBackend, ConsentError, open_consent_store
from policies.consentpg import PostgresConsentStore
from policies.purposes import Purpose
from tests.policies.test_consent import KANYASHREE, NOW, STUDENT, grant_args
from tests.policies.test_consentsign import Signer

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


@pytest.fixture
async def schema(postgres_dsn: str) -> AsyncIterator[str]:
    """A fresh schema for one test, dropped after it."""
    name = f"consent_test_{secrets.token_hex(6)}"
    try:
        yield name
    finally:
        conn = await asyncpg.connect(postgres_dsn)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        finally:
            await conn.close()


@pytest.fixture
def signer() -> Signer:
    return Signer()


@pytest.fixture
async def store(
    postgres_dsn: str, schema: str, signer: Signer
) -> AsyncIterator[PostgresConsentStore]:
    opened = await PostgresConsentStore.open(
        postgres_dsn, schema=schema, signer=signer, clock=lambda: NOW
    )
    try:
        yield opened
    finally:
        await opened.close()


async def _raw(dsn: str, schema: str, sql: str, *args: Any) -> None:
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


async def test_granted_consent_is_found(
    store: PostgresConsentStore, kanyashree: Purpose
) -> None:
    granted = await store.grant(**grant_args(kanyashree))

    assert await store.find_active(STUDENT, KANYASHREE, kanyashree, NOW) == granted


async def test_revoked_consent_is_not_found(
    store: PostgresConsentStore, kanyashree: Purpose
) -> None:
    granted = await store.grant(**grant_args(kanyashree))

    revoked = await store.revoke(granted.consent_id, actor="guardian", at=NOW)

    assert revoked.state == "revoked"
    assert await store.find_active(STUDENT, KANYASHREE, kanyashree, NOW) is None


async def test_the_actor_is_stored_without_outer_spaces(
    store: PostgresConsentStore, kanyashree: Purpose
) -> None:
    granted = await store.grant(**grant_args(kanyashree, actor=" school-office "))

    revoked = await store.revoke(granted.consent_id, actor="\tguardian ", at=NOW)

    first, second = await store.history(granted.consent_id)
    assert (first.actor, second.actor) == ("school-office", "guardian")
    assert revoked.revoked_by == "guardian"


async def test_consent_outside_its_window_is_not_found(
    store: PostgresConsentStore, kanyashree: Purpose
) -> None:
    await store.grant(**grant_args(kanyashree, valid_from=NOW + 10))

    assert await store.find_active(STUDENT, KANYASHREE, kanyashree, NOW) is None


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"granted_by_role": "student"}, "guardian"),
        ({"subject": "WB000000000000"}, "student id"),
        ({"valid_until": 0.0}, "after"),
    ],
)
async def test_bad_grant_is_refused_and_nothing_is_stored(
    store: PostgresConsentStore,
    kanyashree: Purpose,
    changes: dict[str, Any],
    match: str,
) -> None:
    with pytest.raises(ConsentError, match=match):
        await store.grant(**grant_args(kanyashree, **changes))

    assert await store.list_for_subject(STUDENT) == []


async def test_second_revocation_is_refused(
    store: PostgresConsentStore, kanyashree: Purpose
) -> None:
    granted = await store.grant(**grant_args(kanyashree))
    await store.revoke(granted.consent_id, actor="guardian")

    with pytest.raises(ConsentError, match="already revoked"):
        await store.revoke(granted.consent_id, actor="guardian")


async def test_unknown_consent_cannot_be_revoked(store: PostgresConsentStore) -> None:
    with pytest.raises(ConsentError, match="no consent"):
        await store.revoke("no-such-id", actor="guardian")


async def test_history_is_a_signed_chain_that_verifies(
    store: PostgresConsentStore, kanyashree: Purpose
) -> None:
    granted = await store.grant(**grant_args(kanyashree))
    await store.revoke(granted.consent_id, actor="guardian")

    revisions = await store.history(granted.consent_id)

    assert [r.state for r in revisions] == ["active", "revoked"]
    assert revisions[1].prev_hash == revisions[0].hash
    assert all(r.kid == "node-1" and r.signature for r in revisions)
    assert await store.verify_history(granted.consent_id)


async def test_edited_row_fails_verification(
    store: PostgresConsentStore, kanyashree: Purpose, postgres_dsn: str, schema: str
) -> None:
    granted = await store.grant(**grant_args(kanyashree))

    await _raw(
        postgres_dsn,
        schema,
        "UPDATE consents SET valid_until = valid_until + 1 WHERE consent_id = $1",
        granted.consent_id,
    )

    assert not await store.verify_history(granted.consent_id)


async def test_history_signed_by_another_key_fails_verification(
    postgres_dsn: str, schema: str, store: PostgresConsentStore, kanyashree: Purpose
) -> None:
    granted = await store.grant(**grant_args(kanyashree))
    other = await PostgresConsentStore.open(
        postgres_dsn, schema=schema, signer=Signer()
    )
    try:
        assert not await other.verify_history(granted.consent_id)
    finally:
        await other.close()


async def test_concurrent_revocations_append_one_revision(
    postgres_dsn: str, schema: str, store: PostgresConsentStore, kanyashree: Purpose
) -> None:
    granted = await store.grant(**grant_args(kanyashree))
    other = await PostgresConsentStore.open(postgres_dsn, schema=schema)
    outcomes: list[str] = []

    async def revoke(on: PostgresConsentStore) -> None:
        try:
            await on.revoke(granted.consent_id, actor="guardian")
            outcomes.append("revoked")
        except ConsentError:
            outcomes.append("refused")

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(revoke, store)
            group.start_soon(revoke, other)
    finally:
        await other.close()

    assert sorted(outcomes) == ["refused", "revoked"]
    assert len(await store.history(granted.consent_id)) == 2


async def test_store_is_chosen_by_name(
    postgres_dsn: str, schema: str, tmp_path: Any
) -> None:
    chosen: ConsentBackend = await open_consent_store(
        "postgres",
        sqlite_path=tmp_path / "unused.db",
        postgres_dsn=postgres_dsn,
        postgres_schema=schema,
    )
    await chosen.close()

    assert isinstance(chosen, PostgresConsentStore)
    assert not (tmp_path / "unused.db").exists()


async def test_unreachable_database_is_a_node_error() -> None:
    with pytest.raises(NodeError):
        await PostgresConsentStore.open("postgresql://postgres@127.0.0.1:1/none")


async def test_bad_schema_name_is_refused(postgres_dsn: str) -> None:
    with pytest.raises(ConsentError, match="schema"):
        await PostgresConsentStore.open(postgres_dsn, schema="Bad; DROP")
