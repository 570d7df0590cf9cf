"""Request bodies of the registry, checked into plain values, and masked answers.

Every check here takes plain data and either returns plain data or raises
:class:`Rejected` with the HTTP status and the stable error code of the registry's
wire contract (``{"error": "<code>"}``, with ``field`` naming the offending field).
Nothing here echoes a submitted value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any, Final

import orjson

from registry_stub.generate import MINORITY_RELIGIONS, RELIGIONS, nominal_class
from registry_stub.ids import (
    is_valid_udise,
    mask_aadhaar,
    mask_account,
    normalise_aadhaar,
)

Doc = dict[str, Any]

MAX_TEXT: Final = 200
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_PHONE = re.compile(r"\+91[6-9]\d{9}", re.ASCII)
_SECTION = re.compile(r"[A-Z]{1,2}", re.ASCII)
_ACCOUNT = re.compile(r"\d{9,18}", re.ASCII)
_IFSC = re.compile(r"[A-Z]{4}0[A-Z0-9]{6}", re.ASCII)
_YEAR = re.compile(r"(\d{4})-(\d{2})", re.ASCII)

GENDERS: Final = frozenset({"F", "M", "T"})
RELATIONS: Final = frozenset({"father", "mother", "guardian"})
CATEGORIES: Final = frozenset({"GEN", "SC", "ST", "OBC-A", "OBC-B"})
OUTCOMES: Final = frozenset({"promoted", "detained"})
#: Fields of a Student the registry assigns itself; an admission may carry them
#: (a copied record) but their values are ignored.
ASSIGNED: Final = frozenset({"academic_year", "enrolment_status", "school_name"})
#: The fields of a Student in the order of the canonical schema.
STUDENT_FIELDS: Final = (
    "student_id", "name", "date_of_birth", "gender", "class", "section",
    "udise_code", "school_name", "academic_year", "enrolment_status", "guardian",
    "social_category", "minority", "religion", "disability", "bank_account",
    "aadhaar", "last_exam",
)  # fmt: skip
ADMISSION_FIELDS: Final = frozenset(
    {
        "name", "date_of_birth", "gender", "class", "section", "udise_code",
        "guardian", "social_category", "minority", "religion", "disability",
        "bank_account", "aadhaar", "last_exam",
    }
)  # fmt: skip


class Rejected(Exception):  # noqa: N818 - it names the outcome, as the wire does
    """The registry refuses a request: an HTTP status and a stable error code."""

    def __init__(
        self, status: int, code: str, *, field: str | None = None, **extra: Any
    ) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.body: Doc = {"error": code, **extra}
        if field is not None:
            self.body["field"] = field


def json_object(body: bytes) -> Doc:
    """Parse a request body that must be a JSON object.

    Raises Rejected 400 ``invalid_json`` or 422 ``invalid_body``.
    """
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Rejected(400, "invalid_json") from exc
    if not isinstance(value, dict):
        raise Rejected(422, "invalid_body")
    return value


def text(
    obj: Mapping[str, Any], key: str, pattern: re.Pattern[str] | None = None
) -> str:
    """A required non-empty string field; raises Rejected 422 ``invalid_field``."""
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        raise Rejected(422, "invalid_field", field=key)
    if pattern is not None and pattern.fullmatch(value) is None:
        raise Rejected(422, "invalid_field", field=key)
    return value


def iso_date(obj: Mapping[str, Any], key: str) -> date:
    """A required ``YYYY-MM-DD`` field; raises Rejected 422 ``invalid_field``."""
    value = text(obj, key, _DATE)
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise Rejected(422, "invalid_field", field=key) from exc


def choice(obj: Mapping[str, Any], key: str, allowed: frozenset[str]) -> str:
    """A required string field from a fixed set; raises Rejected 422."""
    value = obj.get(key)
    if not isinstance(value, str) or value not in allowed:
        raise Rejected(422, "invalid_field", field=key)
    return value


def integer(obj: Mapping[str, Any], key: str, lo: int, hi: int) -> int:
    """A required integer field within ``lo..hi``; raises Rejected 422."""
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise Rejected(422, "invalid_field", field=key)
    return value


def flag(obj: Mapping[str, Any], key: str, default: bool) -> bool:
    """An optional boolean field; raises Rejected 422 if present and not a boolean."""
    value = obj.get(key, default)
    if not isinstance(value, bool):
        raise Rejected(422, "invalid_field", field=key)
    return value


def mapping(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """A required object field; raises Rejected 422 ``invalid_field``."""
    value = obj.get(key)
    if not isinstance(value, dict):
        raise Rejected(422, "invalid_field", field=key)
    return value


def admission(body: Mapping[str, Any], year_start: date) -> Doc:
    """Check an admission body; return the Student fields it gives, without ids.

    The school fields, academic year and enrolment status are the caller's to set.
    Raises Rejected 422 for an unknown, missing or invalid field, an age outside
    0-18 on ``year_start``, or a class above the one the age allows.
    """
    unknown = body.keys() - ADMISSION_FIELDS - ASSIGNED
    if unknown:
        raise Rejected(422, "unknown_field", field=min(unknown))

    name = mapping(body, "name")
    born = iso_date(body, "date_of_birth")
    class_ = integer(body, "class", 0, 12)
    age = (
        year_start.year
        - born.year
        - ((year_start.month, year_start.day) < (born.month, born.day))
    )
    if not 0 <= age <= 18:
        raise Rejected(422, "age_out_of_range", field="date_of_birth")
    if class_ > nominal_class(age):
        raise Rejected(422, "class_does_not_fit_age", field="class")

    religion = (
        choice(body, "religion", frozenset(RELIGIONS))
        if "religion" in body
        else "Other"
    )
    return {
        "name": {"en": text(name, "en"), "bn": text(name, "bn")},
        "date_of_birth": born.isoformat(),
        "gender": choice(body, "gender", GENDERS),
        "class": class_,
        "section": text(body, "section", _SECTION) if "section" in body else "A",
        "udise_code": udise(body, "udise_code"),
        "guardian": _guardian(mapping(body, "guardian")),
        "social_category": (
            choice(body, "social_category", CATEGORIES)
            if "social_category" in body
            else "GEN"
        ),
        "minority": flag(body, "minority", religion in MINORITY_RELIGIONS),
        "religion": religion,
        "disability": flag(body, "disability", False),
        "bank_account": _optional(body, "bank_account", _bank_account),
        "aadhaar": _aadhaar(body.get("aadhaar")),
        "last_exam": _optional(body, "last_exam", _last_exam),
    }


def udise(obj: Mapping[str, Any], key: str) -> str:
    """A required UDISE code field; raises Rejected 422 ``invalid_field``."""
    value = obj.get(key)
    if not isinstance(value, str) or not is_valid_udise(value):
        raise Rejected(422, "invalid_field", field=key)
    return value


def _guardian(obj: Mapping[str, Any]) -> Doc:
    return {
        "name": text(obj, "name"),
        "relation": choice(obj, "relation", RELATIONS),
        "phone": text(obj, "phone", _PHONE),
    }


def _optional(body: Mapping[str, Any], key: str, check: Any) -> Doc | None:
    if body.get(key) is None:
        return None
    result: Doc = check(mapping(body, key))
    return result


def _bank_account(obj: Mapping[str, Any]) -> Doc:
    return {
        "account_number": text(obj, "account_number", _ACCOUNT),
        "ifsc": text(obj, "ifsc", _IFSC),
        "holder_name": text(obj, "holder_name"),
    }


def _last_exam(obj: Mapping[str, Any]) -> Doc:
    percentage = obj.get("percentage")
    if isinstance(percentage, bool) or not isinstance(percentage, int | float):
        raise Rejected(422, "invalid_field", field="percentage")
    if not 0 <= percentage <= 100:
        raise Rejected(422, "invalid_field", field="percentage")
    return {
        "year": integer(obj, "year", 2000, 2100),
        "class": integer(obj, "class", 0, 12),
        "result": choice(obj, "result", frozenset({"pass", "fail"})),
        "percentage": float(percentage),
    }


def _aadhaar(value: Any) -> str | None:
    if value is None:
        return None
    digits = normalise_aadhaar(value) if isinstance(value, str) else None
    if digits is None:
        raise Rejected(422, "invalid_field", field="aadhaar")
    return digits


def next_academic_year(current: str) -> str:
    """The academic year after ``YYYY-YY``; raises ValueError if malformed."""
    match = _YEAR.fullmatch(current)
    if match is None:
        raise ValueError("academic year must be YYYY-YY")
    start = int(match.group(1)) + 1
    return f"{start}-{(start + 1) % 100:02d}"


def masked(doc: Doc, *, unmask: bool) -> Doc:
    """A copy of a Student with Aadhaar and account number masked unless ``unmask``."""
    if unmask:
        return doc
    out = dict(doc)
    if out.get("aadhaar"):
        out["aadhaar"] = mask_aadhaar(out["aadhaar"])
    account = out.get("bank_account")
    if account:
        out["bank_account"] = {
            **account,
            "account_number": mask_account(account["account_number"]),
        }
    return out


def purpose_id(header: str | None) -> str | None:
    """The purpose id of an ``X-Mediator-Purpose`` value (``id@version``), or None."""
    if not header:
        return None
    pid, at, version = header.partition("@")
    if not at or not pid or not version:
        return None
    return pid
