"""The registry's SQLite store: schema, connection and the queries the app needs.

Each student, school and teacher is kept as its canonical JSON document (``doc``)
beside the few columns that are searched: the student id, the school, the class and
the de-duplication key. The document is the truth; the columns are rewritten with it.
Every function takes an open connection and runs synchronously: a query by key takes
microseconds, so the app calls them directly on its event loop.
"""

from __future__ import annotations

import sqlite3
import unicodedata
from pathlib import Path
from typing import Any

import orjson

from gateway.errors import ConfigError

Doc = dict[str, Any]

TABLES = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE serials (year INTEGER PRIMARY KEY, last INTEGER NOT NULL);
CREATE TABLE schools (
    udise_code TEXT PRIMARY KEY,
    district TEXT NOT NULL COLLATE NOCASE,
    girls_only INTEGER NOT NULL,
    doc BLOB NOT NULL
);
CREATE TABLE students (
    student_id TEXT NOT NULL,
    udise_code TEXT NOT NULL,
    class INTEGER NOT NULL,
    section TEXT NOT NULL,
    gender TEXT NOT NULL,
    date_of_birth TEXT NOT NULL,
    enrolment_status TEXT NOT NULL,
    minority INTEGER NOT NULL,
    dedup_key TEXT NOT NULL,
    doc BLOB NOT NULL
);
CREATE TABLE teachers (
    employee_id TEXT PRIMARY KEY,
    udise_code TEXT NOT NULL,
    doc BLOB NOT NULL
);
CREATE TABLE transfers (
    student_id TEXT NOT NULL,
    from_udise_code TEXT NOT NULL,
    to_udise_code TEXT NOT NULL,
    date TEXT NOT NULL
);
"""

#: Built after a bulk load, which is faster than keeping them up to date row by row.
INDEXES = """
CREATE UNIQUE INDEX students_id ON students (student_id);
CREATE INDEX students_class ON students (udise_code, class, section);
CREATE INDEX students_dedup ON students (dedup_key);
CREATE INDEX schools_district ON schools (district);
CREATE INDEX teachers_school ON teachers (udise_code);
"""

STUDENT_INSERT = "INSERT INTO students VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


def connect(path: Path) -> sqlite3.Connection:
    """Open a seeded registry database in WAL mode, usable from any thread.

    Raises ConfigError if the file is missing or is not a seeded registry.
    """
    if not path.is_file():
        raise ConfigError(str(path), "the registry database does not exist")

    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("SELECT value FROM meta WHERE key = 'academic_year'").fetchone()
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise ConfigError(str(path), "not a seeded registry database") from exc
    return conn


def normalise_name(name: str) -> str:
    """Fold case, diacritics and runs of spaces, for comparing names."""
    decomposed = unicodedata.normalize("NFKD", name)
    letters = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(letters.casefold().split())


def dedup_key(name_en: str, date_of_birth: str, guardian_name: str) -> str:
    """The key two admissions of one child share: name, birth date and guardian."""
    return "|".join(
        (normalise_name(name_en), date_of_birth, normalise_name(guardian_name))
    )


def student_row(doc: Doc) -> tuple[Any, ...]:
    """The column values of a student document, in the order of ``students``."""
    key = dedup_key(doc["name"]["en"], doc["date_of_birth"], doc["guardian"]["name"])
    return (
        doc["student_id"],
        doc["udise_code"],
        doc["class"],
        doc["section"],
        doc["gender"],
        doc["date_of_birth"],
        doc["enrolment_status"],
        int(doc["minority"]),
        key,
        orjson.dumps(doc),
    )


def meta(conn: sqlite3.Connection, key: str) -> str:
    """A value of the ``meta`` table; raises KeyError if it is not set."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    if row is None:
        raise KeyError(key)
    return str(row[0])


def get_student(conn: sqlite3.Connection, student_id: str) -> Doc | None:
    """The student's document, or None."""
    row = conn.execute(
        "SELECT doc FROM students WHERE student_id = ?", (student_id,)
    ).fetchone()
    return None if row is None else _load(row[0])


def list_students(
    conn: sqlite3.Connection,
    udise_code: str,
    class_: int,
    *,
    section: str | None,
    limit: int,
    offset: int,
) -> list[Doc]:
    """Enrolled students of one class of a school, ordered by student id."""
    sql = (
        "SELECT doc FROM students WHERE udise_code = ? AND class = ?"
        " AND enrolment_status = 'enrolled'"
    )
    params: list[Any] = [udise_code, class_]
    if section is not None:
        sql += " AND section = ?"
        params.append(section)
    sql += " ORDER BY student_id LIMIT ? OFFSET ?"
    params += [limit, offset]
    return [_load(row[0]) for row in conn.execute(sql, params)]


def find_duplicate(conn: sqlite3.Connection, key: str) -> str | None:
    """The id of a student with this de-duplication key, or None."""
    row = conn.execute(
        "SELECT student_id FROM students WHERE dedup_key = ? ORDER BY student_id",
        (key,),
    ).fetchone()
    return None if row is None else str(row[0])


def next_serial(conn: sqlite3.Connection, year: int) -> int:
    """Take the next admission serial of a year (call inside a write transaction)."""
    row = conn.execute("SELECT last FROM serials WHERE year = ?", (year,)).fetchone()
    serial = 1 if row is None else int(row[0]) + 1
    conn.execute("INSERT OR REPLACE INTO serials VALUES (?, ?)", (year, serial))
    return serial


def insert_student(conn: sqlite3.Connection, doc: Doc) -> None:
    """Add a new student (call inside a write transaction)."""
    conn.execute(STUDENT_INSERT, student_row(doc))


def replace_student(conn: sqlite3.Connection, doc: Doc) -> None:
    """Rewrite an existing student's document and columns."""
    row = student_row(doc)
    conn.execute(
        "UPDATE students SET udise_code = ?, class = ?, section = ?, gender = ?,"
        " date_of_birth = ?, enrolment_status = ?, minority = ?, dedup_key = ?,"
        " doc = ? WHERE student_id = ?",
        (*row[1:], row[0]),
    )


def record_transfer(
    conn: sqlite3.Connection, student_id: str, from_udise: str, to_udise: str, day: str
) -> None:
    """Keep the history of a transfer beside the student's new document."""
    conn.execute(
        "INSERT INTO transfers VALUES (?, ?, ?, ?)",
        (student_id, from_udise, to_udise, day),
    )


def get_school(conn: sqlite3.Connection, udise_code: str) -> tuple[Doc, bool] | None:
    """The school's document and whether it admits girls only, or None."""
    row = conn.execute(
        "SELECT doc, girls_only FROM schools WHERE udise_code = ?", (udise_code,)
    ).fetchone()
    return None if row is None else (_load(row[0]), bool(row[1]))


def list_schools(conn: sqlite3.Connection, district: str) -> list[Doc]:
    """Schools of a district (matched without regard to case), by UDISE code."""
    rows = conn.execute(
        "SELECT doc FROM schools WHERE district = ? ORDER BY udise_code", (district,)
    )
    return [_load(row[0]) for row in rows]


def list_teachers(conn: sqlite3.Connection, udise_code: str) -> list[Doc]:
    """Teachers of a school, by employee id."""
    rows = conn.execute(
        "SELECT doc FROM teachers WHERE udise_code = ? ORDER BY employee_id",
        (udise_code,),
    )
    return [_load(row[0]) for row in rows]


def write_transaction(conn: sqlite3.Connection) -> _Transaction:
    """A context manager around ``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ROLLBACK)."""
    return _Transaction(conn)


class _Transaction:
    __slots__ = ("_conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self._conn.execute("BEGIN IMMEDIATE")
        return self._conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._conn.execute("COMMIT" if exc_type is None else "ROLLBACK")


def _load(blob: bytes) -> Doc:
    doc: Doc = orjson.loads(blob)
    return doc
