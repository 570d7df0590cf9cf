"""A consent and its history as values: the record's rules and the revision chain.

The stores' own tests (test_consent, test_consentpg, test_consentsign) reach these
functions through SQL rows; here the values are built and broken directly.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from policies.consentrecords import (
    GENESIS,
    ConsentError,
    ConsentRecord,
    ConsentRevision,
    GrantedBy,
    history_verifies,
    is_student_id,
    new_record,
    revoking_actor,
    seal_revision,
)
from policies.purposes import LawfulBasis, Purpose, PurposeSet
from tests.policies.conftest import student_id
from tests.policies.test_consent import grant_args
from tests.policies.test_consentsign import Signer

NOW = 1_767_225_600.0


def chain(
    record: ConsentRecord, signer: Signer | None = None
) -> tuple[ConsentRecord, list[ConsentRevision]]:
    """A granted-then-revoked history of ``record``, and the record it ends at."""
    first = seal_revision(
        record, number=1, prev_hash=GENESIS, at=NOW, actor="office", signer=signer
    )
    revoked = replace(record, state="revoked", revoked_at=NOW + 60, revoked_by="call")
    second = seal_revision(
        revoked,
        number=2,
        prev_hash=first.hash,
        at=NOW + 60,
        actor="call",
        signer=signer,
    )
    return revoked, [first, second]


# -- the record ------------------------------------------------------------------------


def test_a_new_record_is_active_under_a_fresh_id(kanyashree: Purpose) -> None:
    first = new_record(grant_args(kanyashree))
    second = new_record(grant_args(kanyashree))

    assert (first.state, first.purpose_version) == ("active", kanyashree.version)
    assert first.granted_by.name == "Mita Roy"
    assert first.consent_id != second.consent_id


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"subject": "WB000000000000"}, "not a valid student id"),
        ({"granted_by_role": "teacher"}, "must be 'guardian' or 'student'"),
        ({"granted_by_role": "student"}, "granted by a guardian"),
        ({"granted_by_name": "   "}, "are required"),
        ({"actor": "\t"}, "are required"),
        ({"valid_until": NOW - 86_400, "valid_from": NOW}, "must be after"),
        ({"valid_until": NOW, "valid_from": NOW}, "must be after"),
    ],
)
def test_a_grant_that_breaks_a_rule_is_refused(
    kanyashree: Purpose, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConsentError, match=message):
        new_record(grant_args(kanyashree, **changes))


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"granted_by_name": "\udcff\udcfe"}, id="undecodable-argv"),
        pytest.param({"granted_by_name": "Mita \x1b[2JRoy"}, id="terminal-escape"),
        pytest.param({"granted_by_name": "Mita\x00Roy"}, id="nul"),
        pytest.param({"actor": "office\r\nforged line"}, id="line-break"),
    ],
)
def test_a_name_or_actor_that_is_not_plain_text_is_refused(
    kanyashree: Purpose, changes: dict[str, str]
) -> None:
    """Control characters and lone surrogates would reach the officer's terminal."""
    with pytest.raises(ConsentError, match="plain text"):
        new_record(grant_args(kanyashree, **changes))


@pytest.mark.parametrize("field", ["granted_by_name", "actor"])
def test_a_name_or_actor_over_200_characters_is_refused(
    kanyashree: Purpose, field: str
) -> None:
    """The consent API's cap, kept by the store for the CLI as well."""
    new_record(grant_args(kanyashree, **{field: "x" * 200}))
    with pytest.raises(ConsentError, match="at most 200"):
        new_record(grant_args(kanyashree, **{field: "x" * 201}))


@pytest.mark.parametrize(
    ("actor", "kept"),
    [(" guardian-call\t", "guardian-call"), ("x" * 200, "x" * 200)],
)
def test_a_revoking_actor_is_kept_stripped(actor: str, kept: str) -> None:
    assert revoking_actor(actor) == kept


@pytest.mark.parametrize(
    ("actor", "message"),
    [
        ("  ", "the actor is required"),
        ("x" * 201, "at most 200"),
        ("office\x1b[2J", "plain text"),
    ],
)
def test_a_revoking_actor_must_be_short_plain_text(actor: str, message: str) -> None:
    with pytest.raises(ConsentError, match=message):
        revoking_actor(actor)


def test_a_purpose_that_does_not_rest_on_consent_takes_no_grant(
    purposes: PurposeSet,
) -> None:
    public_task = next(
        purpose
        for purpose in map(purposes.get, sorted(purposes.ids()))
        if purpose is not None and purpose.lawful_basis is not LawfulBasis.CONSENT
    )
    with pytest.raises(ConsentError, match="does not rest on consent"):
        new_record(grant_args(public_task))


def test_an_adult_student_may_grant_for_themself(kanyashree: Purpose) -> None:
    args = grant_args(kanyashree, granted_by_role="student", subject_is_minor=False)
    assert new_record(args).granted_by.role == "student"


def test_a_record_covers_its_window_half_open(kanyashree: Purpose) -> None:
    record = new_record(grant_args(kanyashree, valid_from=NOW, valid_until=NOW + 10))

    assert record.covers(NOW)
    assert record.covers(NOW + 9.999)
    assert not record.covers(NOW - 0.001)
    assert not record.covers(NOW + 10)
    assert not replace(record, state="revoked").covers(NOW + 1)


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        (student_id(1), True),
        (student_id(9_999_999, year=2024), True),
        (student_id(1)[:-1] + str((int(student_id(1)[-1]) + 1) % 10), False),
        ("wb" + student_id(1)[2:], False),
        ("XX" + student_id(1)[2:], False),
        (student_id(1) + "0", False),
        (student_id(1)[:-1], False),
        ("WB" + "২০১৯০০০০০০১" + student_id(1)[-1], False),
        (f" {student_id(1)}", False),
    ],
    ids=[
        "valid",
        "valid-2024",
        "check-digit",
        "lower-case",
        "prefix",
        "too-long",
        "too-short",
        "bengali-digits",
        "space",
    ],
)
def test_student_ids_carry_a_verhoeff_check_digit(text: str, valid: bool) -> None:
    assert is_student_id(text) is valid


# -- the chain -------------------------------------------------------------------------


def test_a_sealed_history_verifies_against_its_current_record(
    kanyashree: Purpose,
) -> None:
    current, revisions = chain(new_record(grant_args(kanyashree)))

    assert revisions[0].prev_hash == GENESIS
    assert revisions[1].prev_hash == revisions[0].hash
    assert history_verifies(current, revisions)


def test_a_history_must_end_at_the_current_record(kanyashree: Purpose) -> None:
    """A store that rolled the record back (revoked -> active) is caught."""
    current, revisions = chain(new_record(grant_args(kanyashree)))
    rolled_back = replace(current, state="active", revoked_at=None, revoked_by=None)

    assert not history_verifies(rolled_back, revisions)
    assert not history_verifies(None, revisions)
    assert not history_verifies(current, [])


def _reordered(revisions: list[ConsentRevision]) -> list[ConsentRevision]:
    return list(reversed(revisions))


def _dropped_first(revisions: list[ConsentRevision]) -> list[ConsentRevision]:
    return revisions[1:]


def _renumbered(revisions: list[ConsentRevision]) -> list[ConsentRevision]:
    return [revisions[0], replace(revisions[1], revision=3)]


def _state_edited(revisions: list[ConsentRevision]) -> list[ConsentRevision]:
    return [revisions[0], replace(revisions[1], state="active")]


def _snapshot_edited(revisions: list[ConsentRevision]) -> list[ConsentRevision]:
    record = {**revisions[0].record, "valid_until": NOW + 10 * 365 * 86_400}
    return [replace(revisions[0], record=record), revisions[1]]


def _rehashed(revisions: list[ConsentRevision]) -> list[ConsentRevision]:
    """An edited first link sealed afresh: the second link no longer chains."""
    edited = replace(record_of(revisions[0].record), client="WB/GOV/WCD/aikyashree")
    forged = seal_revision(
        edited,
        number=1,
        prev_hash=GENESIS,
        at=revisions[0].at,
        actor=revisions[0].actor,
        signer=None,
    )
    return [forged, revisions[1]]


def _not_an_object(revisions: list[ConsentRevision]) -> list[ConsentRevision]:
    return [replace(revisions[0], record=[1]), revisions[1]]  # type: ignore[arg-type]


def _not_canonical(revisions: list[ConsentRevision]) -> list[ConsentRevision]:
    """A snapshot that RFC 8785 cannot write (a NaN) fails, it does not raise."""
    record = {**revisions[0].record, "valid_from": float("nan")}
    return [replace(revisions[0], record=record), revisions[1]]


def record_of(snapshot: Any) -> ConsentRecord:
    """The record a revision's snapshot describes."""
    fields = dict(snapshot)
    fields["granted_by"] = GrantedBy(**fields["granted_by"])
    return ConsentRecord(**fields)


@pytest.mark.parametrize(
    "tamper",
    [
        _reordered,
        _dropped_first,
        _renumbered,
        _state_edited,
        _snapshot_edited,
        _rehashed,
        _not_an_object,
        _not_canonical,
    ],
)
def test_a_broken_chain_does_not_verify(kanyashree: Purpose, tamper: Any) -> None:
    current, revisions = chain(new_record(grant_args(kanyashree)))
    assert history_verifies(current, revisions)

    assert not history_verifies(current, tamper(revisions))


def test_with_a_verifier_every_link_must_be_signed_by_a_known_key(
    kanyashree: Purpose,
) -> None:
    signer = Signer()
    current, revisions = chain(new_record(grant_args(kanyashree)), signer)
    other = Signer("node-2")
    _, foreign = chain(new_record(grant_args(kanyashree)), other)

    assert history_verifies(current, revisions, signer)
    unsigned = [revisions[0], replace(revisions[1], kid=None, signature=None)]
    assert history_verifies(current, unsigned)
    assert not history_verifies(current, unsigned, signer)
    swapped = [revisions[0], replace(revisions[1], signature=foreign[1].signature)]
    assert not history_verifies(current, swapped, signer)
    garbled = [revisions[0], replace(revisions[1], signature="*not base64*")]
    assert not history_verifies(current, garbled, signer)
    assert not history_verifies(current, revisions, other)
