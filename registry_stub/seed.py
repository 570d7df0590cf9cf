"""Build a seeded registry database, and pick test subjects from one.

:func:`seed_database` writes a fresh SQLite file (built beside the target and moved
into place, so a half-built registry is never seen) and returns a
:class:`SeedSummary`. :func:`sample_students` picks students deterministically by
gender, age, class, enrolment and minority, for demos and end-to-end tests.
"""

from __future__ import annotations

import itertools
import os
import random
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Final

import orjson

from registry_stub import store
from registry_stub.generate import (
    ACADEMIC_YEAR,
    YEAR_START,
    StudentMaker,
    make_schools,
    make_teachers,
)

BATCH: Final = 10_000
MAX_SCHOOLS: Final = 100_000
MAX_STUDENTS: Final = 5_000_000


@dataclass(frozen=True, slots=True)
class SeedSummary:
    """What :func:`seed_database` wrote and how long it took."""

    students: int
    schools: int
    teachers: int
    seconds: float
    size_bytes: int


def seed_database(
    path: Path, *, students: int, schools: int, seed: int = 2026
) -> SeedSummary:
    """Write a registry of ``students`` students in ``schools`` schools to ``path``.

    An existing file at ``path`` is replaced. The same arguments give the same
    registry. Raises ValueError if a count is out of range (at least two schools,
    at most 100,000; at most 5,000,000 students) and sqlite3.Error or OSError if the
    file cannot be written.
    """
    if not 2 <= schools <= MAX_SCHOOLS:
        raise ValueError("schools must be between 2 and 100000")
    if not 0 <= students <= MAX_STUDENTS:
        raise ValueError("students must be between 0 and 5000000")

    started = time.perf_counter()
    building = path.with_name(path.name + ".building")
    _remove(building)
    conn = sqlite3.connect(building, isolation_level=None)
    try:
        # Synthetic data must be reproducible from its seed, not unpredictable.
        rng = random.Random(seed)  # noqa: S311
        teachers = _fill(conn, rng, students, schools)
    finally:
        conn.close()

    for suffix in ("-wal", "-shm"):
        _remove(path.with_name(path.name + suffix))
    os.replace(building, path)
    return SeedSummary(
        students=students,
        schools=schools,
        teachers=teachers,
        seconds=time.perf_counter() - started,
        size_bytes=path.stat().st_size,
    )


def _fill(
    conn: sqlite3.Connection, rng: random.Random, students: int, count: int
) -> int:
    # A new file that is renamed into place when done needs no journal while it is
    # built; WAL is switched on at the end and stays on in the file.
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    conn.executescript(store.TABLES)

    conn.execute("BEGIN")
    schools = make_schools(rng, count)
    conn.executemany(
        "INSERT INTO schools VALUES (?, ?, ?, ?)",
        (
            (s.udise_code, s.doc["district"], s.girls_only, orjson.dumps(s.doc))
            for s in schools
        ),
    )
    teachers = make_teachers(rng, schools)
    conn.executemany(
        "INSERT INTO teachers VALUES (?, ?, ?)",
        ((t["employee_id"], t["udise_code"], orjson.dumps(t)) for t in teachers),
    )
    maker = StudentMaker(rng, schools)
    for batch in _batches((maker.make() for _ in range(students)), BATCH):
        conn.executemany(store.STUDENT_INSERT, [store.student_row(d) for d in batch])
    conn.executemany("INSERT INTO serials VALUES (?, ?)", maker.serials.items())
    conn.execute("INSERT INTO meta VALUES ('academic_year', ?)", (ACADEMIC_YEAR,))
    conn.execute("COMMIT")

    conn.executescript(store.INDEXES)
    conn.execute("PRAGMA journal_mode = WAL")
    return len(teachers)


def _batches(items: Iterable[store.Doc], size: int) -> Iterator[list[store.Doc]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def age_on(date_of_birth: str, day: date = YEAR_START) -> int:
    """Completed years of a person born on ``date_of_birth`` (ISO) on ``day``."""
    born = date.fromisoformat(date_of_birth)
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def sample_students(
    path: Path,
    *,
    gender: str | None = None,
    min_age: int | None = None,
    max_age: int | None = None,
    classes: Iterable[int] | None = None,
    enrolled: bool | None = True,
    minority: bool | None = None,
    udise_code: str | None = None,
    with_bank_account: bool | None = None,
    limit: int = 10,
) -> list[store.Doc]:
    """The first ``limit`` students (by id) that match every given criterion.

    Ages are counted on the first day of the academic year. ``None`` leaves a
    criterion out. Documents are returned unmasked: this is a tool for tests and
    demos that run beside the registry. Raises ConfigError if ``path`` is not a
    registry database.
    """
    clauses: list[str] = []
    params: list[Any] = []
    if gender is not None:
        clauses.append("gender = ?")
        params.append(gender)
    if min_age is not None:
        clauses.append("date_of_birth <= ?")
        params.append(_years_before_start(min_age).isoformat())
    if max_age is not None:
        clauses.append("date_of_birth > ?")
        params.append(_years_before_start(max_age + 1).isoformat())
    if classes is not None:
        wanted = sorted(set(classes))
        if not wanted:
            return []
        clauses.append(f"class IN ({', '.join('?' * len(wanted))})")
        params += wanted
    if enrolled is not None:
        clauses.append("(enrolment_status = 'enrolled') = ?")
        params.append(enrolled)
    if minority is not None:
        clauses.append("minority = ?")
        params.append(int(minority))
    if udise_code is not None:
        clauses.append("udise_code = ?")
        params.append(udise_code)
    if with_bank_account is not None:
        clauses.append(
            "(json_extract(CAST(doc AS TEXT), '$.bank_account') IS NOT NULL) = ?"
        )
        params.append(with_bank_account)

    where = " AND ".join(clauses) or "1"
    sql = f"SELECT doc FROM students WHERE {where} ORDER BY student_id LIMIT ?"  # noqa: S608 - fixed fragments, values bound
    conn = store.connect(path)
    try:
        rows = conn.execute(sql, (*params, limit)).fetchall()
    finally:
        conn.close()
    return [orjson.loads(row[0]) for row in rows]


def roster_sizes(
    path: Path,
    *,
    klass: int,
    limit: int = 20,
    management: frozenset[str] | None = None,
) -> dict[str, int]:
    """Enrolled students of class ``klass`` (all sections) in the first ``limit``
    schools (by UDISE code) that have any: what a class listing must count.

    With ``management``, a school under any other management counts 0, as the
    listing filtered by it does. Raises ConfigError if ``path`` is not a registry
    database.
    """
    conn = store.connect(path)
    try:
        rows = conn.execute(
            "SELECT udise_code, count(*) FROM students"
            " WHERE class = ? AND enrolment_status = 'enrolled'"
            " GROUP BY udise_code ORDER BY udise_code LIMIT ?",
            (klass, limit),
        ).fetchall()
        kinds = {code: _management(conn, code) for code, _count in rows}
    finally:
        conn.close()
    return {
        str(code): int(count) if management is None or kinds[code] in management else 0
        for code, count in rows
    }


def _management(conn: sqlite3.Connection, udise_code: str) -> str | None:
    found = store.get_school(conn, udise_code)
    return None if found is None else found[0].get("management")


def _years_before_start(years: int) -> date:
    return YEAR_START.replace(year=YEAR_START.year - years)
