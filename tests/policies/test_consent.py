"""The consent store: lifecycle, the lookup of every exchange, and the hash chain."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gateway.errors import NodeError
from gateway.identifiers import ClientId
from policies.consent import ConsentError, ConsentStore, grant_many_sync, is_student_id
from policies.purposes import Purpose, PurposeSet
from tests.policies.conftest import student_id

KANYASHREE = ClientId.parse("WB/GOV/WCD/kanyashree")
AIKYASHREE = ClientId.parse("WB/GOV/MAME/aikyashree")
STUDENT = student_id(1234)
NOW = 1_796_378_400.0
DAY = 86400.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[ConsentStore]:
    opened = await ConsentStore.open(tmp_path / "consent.db", clock=Clock())
    yield opened
    await opened.close()


def grant_args(purpose: Purpose, **changes: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "subject": STUDENT,
        "client": KANYASHREE,
        "purpose": purpose,
        "granted_by_role": "guardian",
        "granted_by_name": "Mita Roy",
        "subject_is_minor": True,
        "valid_from": NOW - DAY,
        "valid_until": NOW + 365 * DAY,
        "actor": "school-office",
    }
    args.update(changes)
    return args


@pytest.mark.anyio
async def test_granted_consent_is_found(
    store: ConsentStore, kanyashree: Purpose
) -> None:
    granted = await store.grant(**grant_args(kanyashree))

    found = await store.find_active(STUDENT, KANYASHREE, kanyashree, NOW)

    assert found == granted
    assert found is not None
    assert found.state == "active"
    assert found.purpose_version == kanyashree.version


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("subject", "client", "at"),
    [
        (student_id(99), KANYASHREE, NOW),  # another student
        (STUDENT, AIKYASHREE, NOW),  # another client
        (STUDENT, KANYASHREE, NOW - 2 * DAY),  # not yet valid
        (STUDENT, KANYASHREE, NOW + 365 * DAY),  # expired (until is exclusive)
        (STUDENT, KANYASHREE, NOW + 400 * DAY),  # expired
    ],
)
async def test_consent_covers_only_its_subject_client_and_window(
    store: ConsentStore, kanyashree: Purpose, subject: str, client: ClientId, at: float
) -> None:
    await store.grant(**grant_args(kanyashree))

    assert await store.find_active(subject, client, kanyashree, at) is None


@pytest.mark.anyio
async def test_consent_covers_only_its_purpose_version(
    store: ConsentStore, kanyashree: Purpose
) -> None:
    await store.grant(**grant_args(kanyashree))
    next_version = replace(kanyashree, version=kanyashree.version + 1)

    assert await store.find_active(STUDENT, KANYASHREE, next_version, NOW) is None


@pytest.mark.anyio
async def test_revocation_takes_effect_immediately(
    store: ConsentStore, kanyashree: Purpose
) -> None:
    granted = await store.grant(**grant_args(kanyashree))

    revoked = await store.revoke(granted.consent_id, actor="guardian-call", at=NOW)

    assert revoked.state == "revoked"
    assert revoked.revoked_at == NOW
    assert revoked.revoked_by == "guardian-call"
    assert await store.find_active(STUDENT, KANYASHREE, kanyashree, NOW) is None


@pytest.mark.anyio
async def test_revoking_twice_is_refused(
    store: ConsentStore, kanyashree: Purpose
) -> None:
    granted = await store.grant(**grant_args(kanyashree))
    await store.revoke(granted.consent_id, actor="a")

    with pytest.raises(ConsentError, match="already revoked"):
        await store.revoke(granted.consent_id, actor="a")


@pytest.mark.anyio
async def test_revoking_unknown_id_is_refused(store: ConsentStore) -> None:
    with pytest.raises(ConsentError, match="no consent"):
        await store.revoke("00000000-0000-4000-8000-000000000000", actor="a")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"granted_by_role": "student"},
            "minor's consent must be granted by a guardian",
        ),
        ({"granted_by_role": "teacher", "subject_is_minor": False}, "role must be"),
        ({"granted_by_name": "  "}, "name and the actor are required"),
        ({"actor": ""}, "name and the actor are required"),
        ({"valid_until": NOW - DAY}, "valid_until must be after"),
        ({"subject": "WB201900001235"}, "not a valid student id"),
        ({"subject": "201900001236"}, "not a valid student id"),
    ],
)
async def test_invalid_grant_is_refused(
    store: ConsentStore, kanyashree: Purpose, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConsentError, match=message):
        await store.grant(**grant_args(kanyashree, **changes))

    assert await store.list_for_subject(STUDENT) == []


@pytest.mark.anyio
async def test_adult_student_may_grant_for_themself(
    store: ConsentStore, kanyashree: Purpose
) -> None:
    args = grant_args(kanyashree, granted_by_role="student", subject_is_minor=False)

    granted = await store.grant(**args)

    assert granted.granted_by.role == "student"


@pytest.mark.anyio
async def test_consent_for_public_task_purpose_is_refused(
    store: ConsentStore, purposes: PurposeSet
) -> None:
    roster = purposes.get("saboojsathi-roster")
    assert roster is not None

    with pytest.raises(ConsentError, match="does not rest on consent"):
        await store.grant(**grant_args(roster))


@pytest.mark.anyio
async def test_list_for_subject_returns_every_state(
    store: ConsentStore, kanyashree: Purpose
) -> None:
    first = await store.grant(**grant_args(kanyashree))
    second = await store.grant(**grant_args(kanyashree, valid_until=NOW + 30 * DAY))
    await store.revoke(first.consent_id, actor="a")

    listed = await store.list_for_subject(STUDENT)

    assert [(r.consent_id, r.state) for r in listed] == [
        (first.consent_id, "revoked"),
        (second.consent_id, "active"),
    ]


def test_record_repr_hides_student_id_and_grantor(
    kanyashree: Purpose, tmp_path: Path
) -> None:
    (record,) = grant_many_sync(tmp_path / "c.db", [grant_args(kanyashree)])

    assert STUDENT not in repr(record)
    assert "Mita Roy" not in repr(record)


# -- history -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_history_is_a_verified_hash_chain(
    store: ConsentStore, kanyashree: Purpose
) -> None:
    granted = await store.grant(**grant_args(kanyashree))
    await store.revoke(granted.consent_id, actor="guardian-call")

    history = await store.history(granted.consent_id)

    assert [(r.revision, r.state, r.actor) for r in history] == [
        (1, "active", "school-office"),
        (2, "revoked", "guardian-call"),
    ]
    assert history[0].prev_hash == "0" * 64
    assert history[1].prev_hash == history[0].hash
    assert await store.verify_history(granted.consent_id)


@pytest.mark.anyio
async def test_unknown_consent_does_not_verify(store: ConsentStore) -> None:
    assert await store.history("nope") == []
    assert not await store.verify_history("nope")


TAMPERING = [
    "UPDATE consents SET valid_until = valid_until + 86400",
    "UPDATE consents SET state = 'active', revoked_at = NULL, revoked_by = NULL",
    "UPDATE consent_revisions SET actor = 'someone-else' WHERE revision = 1",
    "UPDATE consent_revisions SET at = at - 1 WHERE revision = 2",
    "UPDATE consent_revisions SET record = replace(record, 'Mita', 'Rita')"
    " WHERE revision = 1",
    "UPDATE consent_revisions SET state = 'active' WHERE revision = 2",
    "DELETE FROM consent_revisions WHERE revision = 2",
    "DELETE FROM consent_revisions WHERE revision = 1",
    "UPDATE consent_revisions SET prev_hash = hash WHERE revision = 2",
    "UPDATE consent_revisions SET record = '{not json' WHERE revision = 1",
    "UPDATE consent_revisions SET record = '[1]' WHERE revision = 1",
    "UPDATE consent_revisions SET revision = 3 WHERE revision = 2",
]


@pytest.mark.anyio
@pytest.mark.parametrize("statement", TAMPERING)
async def test_tampered_row_is_detected(
    tmp_path: Path, kanyashree: Purpose, statement: str
) -> None:
    path = tmp_path / "consent.db"
    store = await ConsentStore.open(path)
    granted = await store.grant(**grant_args(kanyashree))
    await store.revoke(granted.consent_id, actor="guardian-call")
    with sqlite3.connect(path) as raw:
        raw.execute(statement)
    raw.close()

    assert not await store.verify_history(granted.consent_id)
    await store.close()


# -- bulk and failures ---------------------------------------------------------------


@pytest.mark.anyio
async def test_grant_many_sync_stores_all_in_one_go(
    tmp_path: Path, kanyashree: Purpose
) -> None:
    path = tmp_path / "consent.db"
    grants = [grant_args(kanyashree, subject=student_id(n)) for n in range(1, 51)]

    records = grant_many_sync(path, grants)

    store = await ConsentStore.open(path)
    found = await store.find_active(student_id(7), KANYASHREE, kanyashree, NOW)
    assert found is not None
    assert len(records) == 50
    assert await store.verify_history(records[0].consent_id)
    await store.close()


def test_grant_many_sync_stores_nothing_on_a_bad_grant(
    tmp_path: Path, kanyashree: Purpose
) -> None:
    path = tmp_path / "consent.db"
    grants = [grant_args(kanyashree), grant_args(kanyashree, subject="WB1")]

    with pytest.raises(ConsentError):
        grant_many_sync(path, grants)

    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT count(*) FROM consents").fetchone() == (0,)
    raw.close()


@pytest.mark.anyio
async def test_store_failure_is_a_node_error(
    tmp_path: Path, kanyashree: Purpose
) -> None:
    path = tmp_path / "consent.db"
    store = await ConsentStore.open(path)
    with sqlite3.connect(path) as raw:
        raw.execute("DROP TABLE consent_revisions")
        raw.execute("DROP TABLE consents")
    raw.close()

    with pytest.raises(NodeError) as caught:
        await store.find_active(STUDENT, KANYASHREE, kanyashree, NOW)

    assert caught.value.log_reason == "consent_store"
    await store.close()


def test_lookup_uses_the_index(tmp_path: Path) -> None:
    grant_many_sync(tmp_path / "c.db", [])
    with sqlite3.connect(tmp_path / "c.db") as raw:
        plan = raw.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM consents WHERE subject = ? AND client = ?"
            " AND purpose_id = ? AND purpose_version = ? AND state = 'active'",
            ("a", "b", "c", 1),
        ).fetchall()
    raw.close()

    assert "consents_by_subject" in str(plan)


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        (student_id(1234), True),
        ("WB201900001235", False),
        ("WB20190000123", False),
        ("wb201900001236", False),
        ("WB\uff1201900001236", False),  # a full-width digit
    ],
)
def test_student_id_check(text: str, valid: bool) -> None:
    assert is_student_id(text) is valid
