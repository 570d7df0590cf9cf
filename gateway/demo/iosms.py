"""iOSMS traffic for the demo: the teachers posted at a school, for its staff records.

iOSMS reconciles postings on a public task, with no consent: it asks for a school's
staff in its own shape (names split, a cadre code, service dates as DD-MM-YYYY) and
each answer is compared with the registry's own list of the school's teachers. An
unknown school is the registry's 404, passed through; a UDISE code outside West
Bengal, a read of students and a request without a purpose are refused.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from gateway.client import Answer, DepartmentClient
from gateway.demo.traffic import Call, Expectation
from gateway.identifiers import ClientId, ServiceId
from registry_stub import store

IOSMS = ClientId("WB", "GOV", "SED", "iosms")
SCHOOLS = ServiceId(ClientId("WB", "GOV", "SED", "banglarshiksha"), "schools")
STUDENTS = ServiceId(SCHOOLS.provider, "students")
PURPOSE = "iosms-staff-records"
CADRE = {
    "Head Teacher": "HT",
    "Headmaster": "HM",
    "Headmistress": "HM",
    "Assistant Teacher": "AT",
    "Para Teacher": "PT",
}
HEADS = frozenset({"Head Teacher", "Headmaster", "Headmistress"})


def staff_lists(db: Path, *, schools: int = 40) -> dict[str, list[dict[str, Any]]]:
    """The teachers of the first ``schools`` schools (by UDISE code) that have any.

    Read from the registry's database directly, as the ground truth to check the
    answers against. Raises ConfigError if ``db`` is not a registry database.
    """
    conn = store.connect(db)
    try:
        codes = [
            str(row[0])
            for row in conn.execute(
                "SELECT DISTINCT udise_code FROM teachers ORDER BY udise_code LIMIT ?",
                (schools,),
            )
        ]
        return {code: store.list_teachers(conn, code) for code in codes}
    finally:
        conn.close()


def jobs(
    client: DepartmentClient, staff: dict[str, list[dict[str, Any]]]
) -> list[tuple[str, Expectation, Call]]:
    """One job per school: its staff as iOSMS reads them."""
    return [
        (
            "iosms",
            Expectation("staff of a school", 200, _staff_match(udise, teachers)),
            _staff(client, udise),
        )
        for udise, teachers in staff.items()
    ]


def refused_jobs(client: DepartmentClient) -> list[tuple[str, Expectation, Call]]:
    """Requests iOSMS makes that the registry or the node must not answer with data."""

    def students() -> Awaitable[Answer]:
        return client.call("GET", STUDENTS, "/roster/19110900503", purpose=PURPOSE)

    def no_purpose() -> Awaitable[Answer]:
        return client.call("GET", SCHOOLS, "/postings/19110900503/staff")

    def not_found(answer: Answer) -> bool:
        return bool(answer.json() == {"error": "not_found"})

    unknown = Expectation("unknown school", 404, not_found)
    elsewhere = Expectation("UDISE of another state", 422)
    return [
        ("iosms", unknown, _staff(client, "19999999999")),
        ("iosms", elsewhere, _staff(client, "27110900503")),
        ("iosms", Expectation("reads students", 403), students),
        ("iosms", Expectation("no purpose declared", 403), no_purpose),
    ]


def member(teacher: dict[str, Any]) -> dict[str, Any]:
    """One registry teacher as iOSMS's staff record must show them."""
    name = teacher["name"]["en"]
    parts = name.split(" ")
    out: dict[str, Any] = {
        "employeeCode": teacher["employee_id"],
        "firstName": parts[0],
        "fullName": name,
        "cadreCode": CADRE.get(teacher["designation"], "OTHER"),
        "designation": teacher["designation"],
        "postedAt": teacher["udise_code"],
    }
    if len(parts) > 1:
        out["surname"] = parts[-1]
    if teacher.get("subject") is not None:
        out["subjectTaught"] = teacher["subject"]
    if teacher.get("date_of_joining") is not None:
        year, month, day = teacher["date_of_joining"].split("-")
        out["dateOfJoiningService"] = f"{day}-{month}-{year}"
    if teacher["designation"] in HEADS:
        out["isHeadOfInstitution"] = True
    return out


def _staff_match(
    udise: str, teachers: list[dict[str, Any]]
) -> Callable[[Answer], bool]:
    wanted = {"postingSchoolUdise": udise, "staff": [member(t) for t in teachers]}

    def check(answer: Answer) -> bool:
        return bool(answer.json() == wanted)

    return check


def _staff(client: DepartmentClient, udise: str) -> Call:
    def call() -> Awaitable[Answer]:
        return client.call("GET", SCHOOLS, f"/postings/{udise}/staff", purpose=PURPOSE)

    return call
