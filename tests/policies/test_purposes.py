"""Purposes: loading, the purpose check and finding the subject."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.errors import AccessDeniedError, ConfigError, Reason
from gateway.identifiers import ClientId, ServiceId
from policies.access import AccessRule
from policies.purposes import (
    LawfulBasis,
    PurposeSet,
    SubjectRef,
    check_purpose,
    parse_pointer,
    subject_of,
)

STUDENTS = ServiceId.parse("WB/GOV/SED/banglarshiksha/students")
KANYASHREE = ClientId.parse("WB/GOV/WCD/kanyashree")


def rule(*purposes: str) -> AccessRule:
    return AccessRule("r1", STUDENTS, KANYASHREE, purposes, None)


def test_deployment_purposes_load(purposes: PurposeSet) -> None:
    assert purposes.ids() == {
        "kanyashree-eligibility",
        "saboojsathi-roster",
        "ifms-beneficiary-check",
        "iosms-staff-records",
        "ifms-payment-status",
        "aikyashree-scholarship",
    }
    kanyashree = purposes.get("kanyashree-eligibility")
    assert kanyashree is not None
    assert kanyashree.lawful_basis is LawfulBasis.CONSENT
    assert kanyashree.subject == SubjectRef("body", pointer=("student_id",))


def test_kanyashree_fields_leave_out_sensitive_data(purposes: PurposeSet) -> None:
    kanyashree = purposes.get("kanyashree-eligibility")
    assert kanyashree is not None

    sensitive = {"religion", "minority", "last_exam", "guardian", "bank_account"}
    assert sensitive.isdisjoint(f.split(".")[0] for f in kanyashree.fields)
    assert "aadhaar" not in kanyashree.fields


def test_unknown_purpose_id_is_none(purposes: PurposeSet) -> None:
    assert purposes.get("nope") is None


# -- check_purpose -------------------------------------------------------------------


def test_rule_without_purposes_needs_none(purposes: PurposeSet) -> None:
    assert check_purpose(rule(), None, purposes) is None
    assert check_purpose(rule(), "kanyashree-eligibility", purposes) is None


def test_declared_purpose_of_the_rule_is_returned(purposes: PurposeSet) -> None:
    found = check_purpose(
        rule("kanyashree-eligibility"), "kanyashree-eligibility", purposes
    )

    assert found is purposes.get("kanyashree-eligibility")


@pytest.mark.parametrize(
    ("declared", "reason"),
    [
        (None, Reason.PURPOSE_REQUIRED),
        ("", Reason.PURPOSE_REQUIRED),
        ("saboojsathi-roster", Reason.PURPOSE_NOT_ALLOWED),
        ("Kanyashree-Eligibility", Reason.PURPOSE_NOT_ALLOWED),
        ("marketing", Reason.PURPOSE_NOT_ALLOWED),
    ],
)
def test_missing_or_foreign_purpose_is_denied(
    purposes: PurposeSet, declared: str | None, reason: Reason
) -> None:
    with pytest.raises(AccessDeniedError) as caught:
        check_purpose(rule("kanyashree-eligibility"), declared, purposes)

    assert caught.value.reason is reason


def test_purpose_in_rule_but_not_configured_is_denied(purposes: PurposeSet) -> None:
    with pytest.raises(AccessDeniedError) as caught:
        check_purpose(rule("gone"), "gone", purposes)

    assert caught.value.reason is Reason.PURPOSE_NOT_ALLOWED
    assert caught.value.log_reason == "unknown_purpose"


# -- subject_of ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("purpose_id", "params", "body", "expected"),
    [
        (
            "kanyashree-eligibility",
            {},
            {"student_id": "WB201900001236"},
            "WB201900001236",
        ),
        ("ifms-beneficiary-check", {"student_id": "WB1"}, None, None),
        ("ifms-beneficiary-check", {}, None, None),
        ("saboojsathi-roster", {"student_id": "WB1"}, {"student_id": "WB2"}, None),
    ],
)
def test_subject_is_found_where_the_purpose_says(
    purposes: PurposeSet,
    purpose_id: str,
    params: dict[str, str],
    body: Any,
    expected: str | None,
) -> None:
    purpose = purposes.get(purpose_id)
    assert purpose is not None

    assert subject_of(purpose, params, body) == expected


@pytest.mark.parametrize(
    "body",
    [
        None,
        {},
        [],
        "WB201900001236",
        {"student_id": ""},
        {"student_id": 7},
        {"student_id": ["WB201900001236"]},
        {"student": {"student_id": "x"}},
    ],
)
def test_missing_subject_of_consent_purpose_is_denied(
    purposes: PurposeSet, body: Any
) -> None:
    purpose = purposes.get("kanyashree-eligibility")
    assert purpose is not None

    with pytest.raises(AccessDeniedError) as caught:
        subject_of(purpose, {"student_id": "WB201900001236"}, body)

    assert caught.value.reason is Reason.CONSENT_REQUIRED
    assert caught.value.log_reason == "subject_missing"


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("/student_id", ("student_id",)),
        ("/a/0/b", ("a", "0", "b")),
        ("/a~1b/c~0d", ("a/b", "c~d")),
    ],
)
def test_pointer_is_parsed_per_rfc_6901(text: str, tokens: tuple[str, ...]) -> None:
    assert parse_pointer(text) == tokens


@pytest.mark.parametrize("text", ["", "student_id", "/a~2"])
def test_malformed_pointer_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="JSON Pointer"):
        parse_pointer(text)


# -- config errors -------------------------------------------------------------------

PURPOSE = """
purposes:
  - id: p1
    version: 1
    title: A purpose
    controller: WB/GOV/WCD
    lawful_basis: consent
    subject: {from: body, pointer: /student_id}
    fields: [student_id, name.en]
    retention_days: 30
"""


@pytest.mark.parametrize(
    ("old", "new", "line", "message"),
    [
        ("lawful_basis: consent", "lawful_basis: whim", 6, "lawful_basis"),
        ("version: 1", "version: 0", 3, "version"),
        ("controller: WB/GOV/WCD", "controller: WCD", 5, "member id"),
        ("id: p1", "id: P 1", 2, "a purpose id is"),
        ("pointer: /student_id", "pointer: student_id", 7, "JSON Pointer"),
        ("from: body", "from: header", 7, "subject"),
        ("name.en]", "name..en]", 8, "is not a name"),
        ("name.en]", "'name[].en', name.bn]", 8, "both an array and not"),
        ("retention_days: 30", "retention_days: 30\n    owner: me", 10, "Extra inputs"),
    ],
)
def test_config_error_names_file_and_line(
    write_yaml: Callable[[str, str], Path], old: str, new: str, line: int, message: str
) -> None:
    path = write_yaml("purposes.yaml", PURPOSE.replace(old, new))

    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        PurposeSet.load(path)

    assert caught.value.file == str(path)
    assert caught.value.line == line


def test_purpose_id_used_twice_is_a_config_error(
    write_yaml: Callable[[str, str], Path],
) -> None:
    path = write_yaml("purposes.yaml", PURPOSE + PURPOSE.replace("purposes:\n", ""))

    with pytest.raises(ConfigError, match="used twice"):
        PurposeSet.load(path)
