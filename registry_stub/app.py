"""The central school registry as an ASGI app: students, schools and teachers.

:func:`create_app` builds it over a seeded database (see :mod:`registry_stub.seed`).
The endpoints are those of the registry's canonical API; its OpenAPI document is
served at ``/api/openapi.json``. Every refusal is ``{"error": "<code>"}`` with
400, 404, 409, 413 or 422. Aadhaar and bank account numbers leave masked unless the
``X-Mediator-Purpose`` header names a purpose the registry lists as needing them.
If a response signer is given, every response carries the headers it returns.
"""

from __future__ import annotations

import contextlib
import hmac
import re
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import date
from pathlib import Path
from typing import Any, Final

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import wire
from registry_stub import facts, records, store
from registry_stub.ids import is_valid_student_id, is_valid_udise, make_student_id
from registry_stub.openapi import OPENAPI
from registry_stub.records import Doc, Rejected

#: Takes (status, response headers, body) and returns the headers to add.
ResponseSigner = Callable[[int, dict[str, str], bytes], dict[str, str]]

MAX_BODY: Final = 64 * 1024
MAX_LIMIT: Final = 500
MAX_OFFSET: Final = 10_000_000
_NUMBER = re.compile(r"\d{1,9}", re.ASCII)
_OPENAPI_BODY: Final = orjson.dumps(OPENAPI)


def create_app(
    db_path: Path,
    *,
    purposes_unmasked: frozenset[str] = frozenset(),
    response_signer: ResponseSigner | None = None,
) -> Starlette:
    """Build the registry app over the database at ``db_path``.

    Raises ConfigError if the file is missing or not a seeded registry database.
    """
    registry = Registry(store.connect(db_path), purposes_unmasked)
    middleware = []
    if response_signer is not None:
        middleware.append(Middleware(SigningMiddleware, signer=response_signer))
    return Starlette(
        routes=registry.routes(),
        middleware=middleware,
        exception_handlers={Rejected: _rejected, HTTPException: _http_error},
        lifespan=registry.lifespan,
    )


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status, media_type="application/json")


async def _rejected(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, Rejected):
        raise TypeError("handler registered for Rejected only")
    return _json(exc.body, exc.status)


async def _http_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, HTTPException):
        raise TypeError("handler registered for HTTPException only")
    code = {404: "not_found", 405: "method_not_allowed"}.get(
        exc.status_code, "bad_request"
    )
    return Response(
        orjson.dumps({"error": code}),
        exc.status_code,
        headers=exc.headers,
        media_type="application/json",
    )


class Registry:
    """The endpoints, over one SQLite connection used from the event loop."""

    def __init__(
        self, conn: sqlite3.Connection, purposes_unmasked: frozenset[str]
    ) -> None:
        self._conn = conn
        self._unmasked = purposes_unmasked
        self._year = store.meta(conn, "academic_year")
        self._year_start = date(int(self._year[:4]), 4, 1)

    def routes(self) -> list[Route]:
        """The registry's routes (more specific paths before path parameters)."""
        return [
            Route("/api/openapi.json", self.openapi, methods=["GET"]),
            Route("/api/students", self.list_students, methods=["GET"]),
            Route("/api/students", self.admit, methods=["POST"]),
            Route(
                "/api/students/verify-enrolment",
                self.verify_enrolment,
                methods=["POST"],
            ),
            Route(
                "/api/students/payment-status",
                self.payment_status,
                methods=["POST"],
            ),
            Route("/api/students/{student_id}", self.get_student, methods=["GET"]),
            Route(
                "/api/students/{student_id}/promotion", self.promote, methods=["POST"]
            ),
            Route(
                "/api/students/{student_id}/transfer", self.transfer, methods=["POST"]
            ),
            Route(
                "/api/students/{student_id}/bank-account/verify",
                self.verify_bank_account,
                methods=["POST"],
            ),
            Route("/api/schools", self.list_schools, methods=["GET"]),
            Route("/api/schools/{udise_code}", self.get_school, methods=["GET"]),
            Route("/api/schools/{udise_code}/teachers", self.teachers, methods=["GET"]),
        ]

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        """Close the database connection when the server stops."""
        try:
            yield
        finally:
            self._conn.close()

    async def openapi(self, request: Request) -> Response:
        """The OpenAPI 3.1 document of the registry."""
        return Response(_OPENAPI_BODY, media_type="application/json")

    # students

    async def get_student(self, request: Request) -> Response:
        """One Student; 400 for a malformed id, 404 for an unknown one."""
        doc = self._student(request.path_params["student_id"])
        return _json(self._release(request, doc))

    async def list_students(self, request: Request) -> Response:
        """Enrolled students of a class of a school; 400 for a bad parameter.

        With ``management`` (comma-separated government, aided, private), a school
        under any other management lists no students.
        """
        query = request.query_params
        udise_code = query.get("udise_code")
        if udise_code is None or not is_valid_udise(udise_code):
            raise Rejected(400, "invalid_parameter", field="udise_code")
        managed = self._managed_as(udise_code, query.get("management"))
        class_ = _number(query.get("class"), "class", 0, 12)
        section = query.get("section")
        if section is not None and not re.fullmatch(r"[A-Z]{1,2}", section, re.ASCII):
            raise Rejected(400, "invalid_parameter", field="section")
        limit = _number(query.get("limit", str(MAX_LIMIT)), "limit", 1, MAX_LIMIT)
        offset = _number(query.get("offset", "0"), "offset", 0, MAX_OFFSET)

        docs = store.list_students(
            self._conn, udise_code, class_, section=section, limit=limit, offset=offset
        )
        if not managed:
            docs = []
        students = [self._release(request, d) for d in docs]
        listing = {"udise_code": udise_code, "class": class_}
        return _json({**listing, "count": len(students), "students": students})

    async def verify_enrolment(self, request: Request) -> Response:
        """Whether an id is enrolled (an unknown id is not); 400/422 for bad bodies."""
        body = records.json_object(await _body(request))
        student_id = records.text(body, "student_id")
        claimed = (
            records.iso_date(body, "date_of_birth") if "date_of_birth" in body else None
        )
        bounds = facts.window(body)

        doc = (
            store.get_student(self._conn, student_id)
            if is_valid_student_id(student_id)
            else None
        )
        extra = {} if bounds is None else {"window": facts.window_facts(doc, bounds)}
        if doc is None:
            unknown = {"student_id": student_id, "enrolled": False}
            return _json(
                {**unknown, "date_of_birth_matches": None, **_UNKNOWN_STUDENT, **extra}
            )
        matches = (
            None if claimed is None else claimed.isoformat() == doc["date_of_birth"]
        )
        return _json(
            {
                "student_id": student_id,
                "enrolled": doc["enrolment_status"] == "enrolled",
                "date_of_birth_matches": matches,
                **{field: doc.get(field) for field in _VERIFY_FIELDS},
                **extra,
            }
        )

    async def payment_status(self, request: Request) -> Response:
        """Which scholarship payments may be made; 400/413/422 for bad bodies."""
        wanted = facts.payments(records.json_object(await _body(request)))

        def find(student_id: str) -> Doc | None:
            if not is_valid_student_id(student_id):
                return None
            return store.get_student(self._conn, student_id)

        return _json(facts.payment_report(wanted, find))

    async def admit(self, request: Request) -> Response:
        """Admit a new student (201); 409 for a duplicate, 422 for a bad body."""
        fields = records.admission(
            records.json_object(await _body(request)), self._year_start
        )
        school = self._school_for(
            fields["udise_code"], fields["class"], fields["gender"]
        )
        key = store.dedup_key(
            fields["name"]["en"], fields["date_of_birth"], fields["guardian"]["name"]
        )

        with store.write_transaction(self._conn) as conn:
            existing = store.find_duplicate(conn, key)
            if existing is not None:
                raise Rejected(409, "duplicate", existing_student_id=existing)
            year = self._year_start.year
            assigned = {
                "student_id": make_student_id(year, store.next_serial(conn, year)),
                "school_name": school["name"],
                "academic_year": self._year,
                "enrolment_status": "enrolled",
            }
            merged = {**fields, **assigned}
            doc = {k: merged[k] for k in records.STUDENT_FIELDS}
            store.insert_student(conn, doc)
        response = _json(self._release(request, doc), 201)
        response.headers["location"] = f"/api/students/{doc['student_id']}"
        return response

    async def promote(self, request: Request) -> Response:
        """Record a year-end outcome; 409 if not enrolled or for another year."""
        body = records.json_object(await _body(request))
        outcome = records.choice(body, "outcome", records.OUTCOMES)
        year = records.text(body, "academic_year")
        percentage = body.get("percentage")
        if percentage is not None and (
            isinstance(percentage, bool)
            or not isinstance(percentage, int | float)
            or not 0 <= percentage <= 100
        ):
            raise Rejected(422, "invalid_field", field="percentage")

        with store.write_transaction(self._conn) as conn:
            doc = self._student(request.path_params["student_id"])
            _require_enrolled(doc)
            if year != records.next_academic_year(doc["academic_year"]):
                raise Rejected(409, "academic_year_mismatch", field="academic_year")
            doc = _promoted(doc, year, outcome, percentage)
            store.replace_student(conn, doc)
        return _json(self._release(request, doc))

    async def transfer(self, request: Request) -> Response:
        """Move a student to another school, keeping the id; 409/422 if impossible."""
        body = records.json_object(await _body(request))
        to_udise = records.udise(body, "to_udise_code")
        day = records.iso_date(body, "date")

        with store.write_transaction(self._conn) as conn:
            doc = self._student(request.path_params["student_id"])
            _require_enrolled(doc)
            if doc["udise_code"] == to_udise:
                raise Rejected(409, "same_school", field="to_udise_code")
            school = self._school_for(to_udise, doc["class"], doc["gender"])
            moved = (doc["udise_code"], to_udise, day.isoformat())
            store.record_transfer(conn, doc["student_id"], *moved)
            doc = {**doc, "udise_code": to_udise, "school_name": school["name"]}
            store.replace_student(conn, doc)
        return _json(self._release(request, doc))

    async def verify_bank_account(self, request: Request) -> Response:
        """Compare an account number and IFSC with the record; never return them."""
        body = records.json_object(await _body(request))
        number = records.text(body, "account_number")
        ifsc = records.text(body, "ifsc")
        doc = self._student(request.path_params["student_id"])

        account = doc.get("bank_account") or {}
        # Compared in constant time: the answer must not leak how much matched.
        account_matches = hmac.compare_digest(
            number.encode(), str(account.get("account_number", "")).encode()
        )
        ifsc_matches = hmac.compare_digest(
            ifsc.encode(), str(account.get("ifsc", "")).encode()
        )
        return _json(
            {
                "student_id": doc["student_id"],
                "account_matches": bool(account) and account_matches,
                "ifsc_matches": bool(account) and ifsc_matches,
            }
        )

    # schools and teachers

    async def get_school(self, request: Request) -> Response:
        """One School; 400 for a malformed UDISE code, 404 for an unknown one."""
        return _json(self._school(request.path_params["udise_code"])[0])

    async def list_schools(self, request: Request) -> Response:
        """Schools of a district; 400 without a district."""
        district = request.query_params.get("district")
        if not district or len(district) > 100:
            raise Rejected(400, "invalid_parameter", field="district")
        return _json({"schools": store.list_schools(self._conn, district)})

    async def teachers(self, request: Request) -> Response:
        """Teachers of a school; 400 or 404 as for the school."""
        udise_code = self._school(request.path_params["udise_code"])[0]["udise_code"]
        teachers = store.list_teachers(self._conn, udise_code)
        return _json({"udise_code": udise_code, "teachers": teachers})

    # helpers

    def _student(self, student_id: str) -> Doc:
        if not is_valid_student_id(student_id):
            raise Rejected(400, "invalid_student_id")
        doc = store.get_student(self._conn, student_id)
        if doc is None:
            raise Rejected(404, "not_found")
        return doc

    def _school(self, udise_code: str) -> tuple[Doc, bool]:
        if not is_valid_udise(udise_code):
            raise Rejected(400, "invalid_udise_code")
        found = store.get_school(self._conn, udise_code)
        if found is None:
            raise Rejected(404, "not_found")
        return found

    def _school_for(self, udise_code: str, class_: int, gender: str) -> Doc:
        found = store.get_school(self._conn, udise_code)
        if found is None:
            raise Rejected(422, "unknown_school", field="udise_code")
        school, girls_only = found
        lo, hi = school["classes"]
        if not lo <= class_ <= hi:
            raise Rejected(422, "class_not_offered", field="class")
        if girls_only and gender != "F":
            raise Rejected(422, "school_admits_girls_only", field="gender")
        return school

    def _managed_as(self, udise_code: str, wanted: str | None) -> bool:
        """Whether the school's management is among ``wanted`` (True if not given).

        Raises Rejected 400 for an unknown management kind.
        """
        if wanted is None:
            return True
        kinds = set(wanted.split(","))
        if not kinds or not kinds <= _MANAGEMENT:
            raise Rejected(400, "invalid_parameter", field="management")
        found = store.get_school(self._conn, udise_code)
        return found is not None and found[0].get("management") in kinds

    def _release(self, request: Request, doc: Doc) -> Doc:
        purpose = records.purpose_id(request.headers.get(wire.PURPOSE_FORWARDED))
        return records.masked(doc, unmask=purpose in self._unmasked)


_VERIFY_FIELDS: Final = (
    "name",
    "gender",
    "date_of_birth",
    "class",
    "udise_code",
    "school_name",
    "academic_year",
    "minority",
    "religion",
    "last_exam",
)
_UNKNOWN_STUDENT: Final = dict.fromkeys(_VERIFY_FIELDS)
_MANAGEMENT: Final = frozenset({"government", "aided", "private"})


async def _body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise Rejected(413, "body_too_large")
    body = await request.body()
    if len(body) > MAX_BODY:
        raise Rejected(413, "body_too_large")
    return body


def _number(value: str | None, field: str, lo: int, hi: int) -> int:
    if value is None or _NUMBER.fullmatch(value) is None or not lo <= int(value) <= hi:
        raise Rejected(400, "invalid_parameter", field=field)
    return int(value)


def _require_enrolled(doc: Doc) -> None:
    if doc["enrolment_status"] != "enrolled":
        raise Rejected(409, "not_enrolled")


def _promoted(doc: Doc, year: str, outcome: str, percentage: float | None) -> Doc:
    old_class = doc["class"]
    out = {**doc, "academic_year": year}
    if outcome == "promoted" and old_class == 12:
        out["enrolment_status"] = "passed_out"
    elif outcome == "promoted":
        out["class"] = old_class + 1
    # Pre-primary and class 1 have no examination to record.
    if old_class >= 1:
        out["last_exam"] = {
            "year": int(doc["academic_year"][:4]),
            "class": old_class,
            "result": "pass" if outcome == "promoted" else "fail",
            "percentage": None if percentage is None else float(percentage),
        }
    return out


class SigningMiddleware:
    """Buffers each response and adds the headers the signer returns for it."""

    def __init__(self, app: ASGIApp, signer: ResponseSigner) -> None:
        self._app = app
        self._signer = signer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            await send(self._signed(start, body))
            await send({"type": "http.response.body", "body": body})

        await self._app(scope, receive, capture)

    def _signed(self, start: Message, body: bytes) -> Message:
        raw = start.get("headers", [])
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in raw}
        added = self._signer(start["status"], headers, body)
        extra = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in added.items()
        ]
        return {**start, "headers": [*raw, *extra]}
