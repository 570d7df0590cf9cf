"""Purposes: why a client reads data, on which lawful basis, and which fields (step 6).

A purpose follows the agreement of the GovStack Consent building block: an id and a
version, a title, the controller (the member responsible), a lawful basis, where to
find the data subject in the canonical request, the fields a response may carry and
how long the data may be kept. Purposes come from ``purposes.yaml``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from gateway.errors import AccessDeniedError, ConfigError, Reason
from gateway.yamlconf import ErrorCollector, Strict, line_of, read_yaml, validate
from policies.access import AccessRule
from policies.release import Release, compile_release

_PURPOSE_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}", re.ASCII)
_MEMBER_ID = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}(/[A-Za-z0-9][A-Za-z0-9._-]{0,63}){2}"
)


class LawfulBasis(enum.StrEnum):
    """The legal ground for processing (GDPR Art. 6 / DPDP Act 2023 sections 6-7)."""

    CONSENT = "consent"
    PUBLIC_TASK = "public_task"
    LEGAL_OBLIGATION = "legal_obligation"


# -- the file ------------------------------------------------------------------------


class BodySubjectEntry(Strict):
    source: Literal["body"] = Field(alias="from")
    pointer: str


class PathSubjectEntry(Strict):
    source: Literal["path"] = Field(alias="from")
    param: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


SubjectEntry = Annotated[
    BodySubjectEntry | PathSubjectEntry, Field(discriminator="source")
]


class PurposeEntry(Strict):
    id: str
    version: int = Field(ge=1)
    title: str = Field(min_length=1)
    controller: str
    lawful_basis: LawfulBasis
    subject: SubjectEntry | None
    fields: tuple[str, ...] = Field(min_length=1)
    retention_days: int = Field(ge=1, le=36500)


class PurposesFile(Strict):
    """The whole of ``purposes.yaml``."""

    purposes: tuple[PurposeEntry, ...] = ()


# -- purposes ------------------------------------------------------------------------


@dataclass(frozen=True)
class SubjectRef:
    """Where the data subject's student id is: a JSON Pointer or a path parameter."""

    source: Literal["body", "path"]
    pointer: tuple[str, ...] = ()
    param: str | None = None


@dataclass(frozen=True)
class Purpose:
    """One purpose, at one version. A consent covers exactly one version."""

    id: str
    version: int
    title: str
    controller: str
    lawful_basis: LawfulBasis
    subject: SubjectRef | None
    fields: tuple[str, ...]
    retention_days: int

    @cached_property
    def release(self) -> Release:
        """The compiled release of :attr:`fields`; raises ValueError if malformed."""
        return compile_release(self.fields)


class PurposeSet:
    """The purposes of one deployment, by id."""

    def __init__(self, purposes: Mapping[str, Purpose]) -> None:
        self._purposes = dict(purposes)
        self._ids = frozenset(self._purposes)

    @classmethod
    def load(cls, path: Path) -> PurposeSet:
        """Load ``purposes.yaml``; raise ConfigError naming the file and line.

        Besides the shape of each entry this checks that ids are unique, that the
        controller is a member id, that the subject pointer is a JSON Pointer and
        that every field path compiles. Several bad purposes raise
        GroupedConfigError, one problem for each.
        """
        data = read_yaml(path)
        parsed = validate(data, PurposesFile, path)
        purposes: dict[str, Purpose] = {}
        collector = ErrorCollector()
        for index, entry in enumerate(parsed.purposes):
            with collector.attempt():
                purpose = _purpose(entry, _Locate(path, data, index))
                if purpose.id in purposes:
                    raise _Locate(path, data, index).error(
                        ("id",), "purpose id is used twice"
                    )
                purposes[purpose.id] = purpose
        collector.raise_any()
        return cls(purposes)

    def get(self, purpose_id: str) -> Purpose | None:
        return self._purposes.get(purpose_id)

    def ids(self) -> frozenset[str]:
        return self._ids

    def __iter__(self) -> Iterator[Purpose]:
        return iter(self._purposes.values())


@dataclass(frozen=True, slots=True)
class _Locate:
    path: Path
    data: Any
    index: int

    def error(self, loc: tuple[int | str, ...], reason: str) -> ConfigError:
        full = ("purposes", self.index, *loc)
        where = ".".join(str(part) for part in full)
        line = line_of(self.data, full)
        return ConfigError(str(self.path), f"{where}: {reason}", line=line)


def _purpose(entry: PurposeEntry, at: _Locate) -> Purpose:
    if not _PURPOSE_ID.fullmatch(entry.id):
        raise at.error(("id",), "a purpose id is lower-case letters, digits, '.-_'")
    if not _MEMBER_ID.fullmatch(entry.controller):
        raise at.error(
            ("controller",), "the controller is a member id INSTANCE/CLASS/MEMBER"
        )
    purpose = Purpose(
        id=entry.id,
        version=entry.version,
        title=entry.title,
        controller=entry.controller,
        lawful_basis=entry.lawful_basis,
        subject=_subject(entry.subject, at),
        fields=entry.fields,
        retention_days=entry.retention_days,
    )
    for position, field in enumerate(entry.fields):
        try:
            compile_release([field])
        except ValueError as exc:
            raise at.error(("fields", position), str(exc)) from exc
    try:
        purpose.release  # noqa: B018 (compiled now, so a conflict stops the load)
    except ValueError as exc:
        raise at.error(("fields",), str(exc)) from exc
    return purpose


def _subject(
    entry: BodySubjectEntry | PathSubjectEntry | None, at: _Locate
) -> SubjectRef | None:
    if entry is None:
        return None
    if isinstance(entry, PathSubjectEntry):
        return SubjectRef("path", param=entry.param)
    try:
        return SubjectRef("body", pointer=parse_pointer(entry.pointer))
    except ValueError as exc:
        raise at.error(("subject", "pointer"), str(exc)) from exc


def parse_pointer(text: str) -> tuple[str, ...]:
    """The reference tokens of an RFC 6901 JSON Pointer; raise ValueError.

    The empty pointer (the whole document) is refused: a subject is one value.
    """
    if not text.startswith("/"):
        raise ValueError("a JSON Pointer starts with '/'")
    tokens = text[1:].split("/")
    if re.search(r"~(?![01])", text):
        raise ValueError("'~' in a JSON Pointer must be '~0' or '~1'")
    return tuple(token.replace("~1", "/").replace("~0", "~") for token in tokens)


# -- decisions -----------------------------------------------------------------------


def check_purpose(
    rule: AccessRule, declared: str | None, purposes: PurposeSet
) -> Purpose | None:
    """The purpose that allows this exchange, or None if the rule has no purposes.

    Raises AccessDeniedError: PURPOSE_REQUIRED when the rule names purposes and none
    was declared, PURPOSE_NOT_ALLOWED when the declared one is not among them or not
    configured.
    """
    if not rule.purposes:
        return None
    if not declared:
        raise AccessDeniedError(Reason.PURPOSE_REQUIRED)
    if declared not in rule.purposes:
        raise AccessDeniedError(Reason.PURPOSE_NOT_ALLOWED, log_reason="not_in_rule")
    purpose = purposes.get(declared)
    if purpose is None:
        raise AccessDeniedError(
            Reason.PURPOSE_NOT_ALLOWED, log_reason="unknown_purpose"
        )
    return purpose


def subject_of(
    purpose: Purpose, path_params: Mapping[str, str], canonical_body: Any
) -> str | None:
    """The student id the exchange is about, or None if the purpose names none.

    Raises AccessDeniedError(CONSENT_REQUIRED) when a consent purpose's subject is
    missing, empty or not a string: without a subject no consent can be checked.
    """
    subject = _find_subject(purpose.subject, path_params, canonical_body)
    if subject is None and purpose.lawful_basis is LawfulBasis.CONSENT:
        raise AccessDeniedError(Reason.CONSENT_REQUIRED, log_reason="subject_missing")
    return subject


def _find_subject(
    ref: SubjectRef | None, path_params: Mapping[str, str], body: Any
) -> str | None:
    if ref is None:
        return None
    if ref.source == "path":
        value: Any = path_params.get(ref.param or "")
    else:
        value = _resolve(ref.pointer, body)
    if not isinstance(value, str) or not value:
        return None
    return value


def _resolve(pointer: tuple[str, ...], document: Any) -> Any:
    node = document
    for token in pointer:
        if isinstance(node, dict):
            node = node.get(token)
        elif isinstance(node, list) and _is_index(token) and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
    return node


def _is_index(token: str) -> bool:
    return token.isascii() and token.isdigit()
