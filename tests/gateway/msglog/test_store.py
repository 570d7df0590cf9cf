"""The log store's shared contract: its error, its search and prune rules, its rows."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import orjson
import pytest

from gateway.errors import NodeError, Reason
from gateway.msglog.checkpoint import Checkpoint
from gateway.msglog.records import SealedRecord, seal
from gateway.msglog.store import (
    RECORD_COLUMNS,
    SELECT_RECORDS,
    ArchivedLeaf,
    ArchiveEntry,
    LogStore,
    LogTail,
    PagedReads,
    SearchQuery,
    StoredRecord,
    StoreError,
    archive_columns,
    archive_entry,
    checkpoint_or_none,
    columns,
    search_clauses,
    stored_record,
)
from tests.gateway.msglog.conftest import Backend, make_record

pytestmark = pytest.mark.anyio

IFMS = "WB/GOV/SED/ifms"
KANYASHREE = "WB/GOV/WCD/kanyashree"
STUDENTS = "WB/GOV/SED/banglarshiksha/students"
SCHOOLS = "WB/GOV/SED/banglarshiksha/schools"
SUBJECT = "5a" * 32

#: Per record: client, service, subject hash and message id. Records 0 and 3 are
#: denied, the others forwarded (see ``make_record``).
ROWS = [
    (IFMS, STUDENTS, SUBJECT, "msg-0"),
    (KANYASHREE, STUDENTS, None, "msg-1"),
    (IFMS, SCHOOLS, SUBJECT, "msg-2"),
    (KANYASHREE, SCHOOLS, None, "msg-shared"),
    (IFMS, STUDENTS, None, "msg-shared"),
    (KANYASHREE, STUDENTS, None, "msg-5"),
]


def ts(i: int) -> float:
    """The time of record ``i`` of the store under test."""
    return float(make_record(i)["ts"])


def record(i: int) -> dict[str, Any]:
    client, service, subject, message_id = ROWS[i]
    fields = {"client_id": client, "service_id": service, "message_id": message_id}
    if subject is not None:
        fields["subject_hash"] = subject
    return {**make_record(i), **fields}


async def append(store: LogStore, records: list[dict[str, Any]]) -> None:
    """Seal ``records`` after the store's tail and append them as one batch."""

    def sealing(tail: LogTail) -> list[SealedRecord]:
        sealed: list[SealedRecord] = []
        prev_hash = tail.last_hash
        for offset, value in enumerate(records):
            sealed.append(seal(value, tail.size + offset, prev_hash))
            prev_hash = sealed[-1].hash
        return sealed

    await store.append_sealing(sealing)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[LogStore]:
    """An open store of the six records of ``ROWS``."""
    opened = backend.store()
    await opened.open()
    try:
        await append(opened, [record(i) for i in range(len(ROWS))])
        yield opened
    finally:
        await opened.close()


def entry(first_seq: int, end_seq: int) -> ArchiveEntry:
    return ArchiveEntry(
        name=f"messagelog-{first_seq}.zip",
        period="2023-11-14",
        period_end=1_700_006_400.0,
        first_seq=first_seq,
        end_seq=end_seq,
        tree_size=end_seq,
        sha256="cd" * 32,
        created=1_700_010_000.0,
    )


CHECKPOINT = Checkpoint(
    origin="shiksha-mediator",
    tree_size=8,
    root_hash="ef" * 32,
    timestamp=1_700_000_100.0,
    key_id="node-a-2024",
    signature="c2lnbmF0dXJl",
)


# -- the error -----------------------------------------------------------------------


def test_store_error_is_log_unavailable_naming_the_operation() -> None:
    """The node fails closed with LOG_UNAVAILABLE; the operation is in the reason."""
    error = StoreError("append")

    assert isinstance(error, NodeError)
    assert (error.reason, error.log_reason) == (
        Reason.LOG_UNAVAILABLE,
        "log_store_append",
    )
    assert (error.operation, str(error)) == (
        "append",
        "message log store failed: append",
    )


# -- search clauses ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "clauses", "params"),
    [
        (SearchQuery(), [], []),
        (SearchQuery(client_id=IFMS), ["client_id = ?"], [IFMS]),
        (SearchQuery(service_id=SCHOOLS), ["service_id = ?"], [SCHOOLS]),
        (SearchQuery(decision="denied"), ["decision = ?"], ["denied"]),
        (SearchQuery(message_id="msg-1"), ["message_id = ?"], ["msg-1"]),
        (SearchQuery(subject_hash=SUBJECT), ["subject_hash = ?"], [SUBJECT]),
        (SearchQuery(since=5.0), ["ts >= ?"], [5.0]),
        (SearchQuery(until=5.0), ["ts < ?"], [5.0]),
        (SearchQuery(since=0.0), ["ts >= ?"], [0.0]),
        (SearchQuery(limit=3), [], []),
    ],
    ids=[
        "none",
        "client",
        "service",
        "decision",
        "message",
        "subject",
        "since",
        "until",
        "since-zero",
        "limit",
    ],
)
def test_each_set_filter_is_one_clause_and_one_parameter(
    query: SearchQuery, clauses: list[str], params: list[Any]
) -> None:
    """Unset filters add nothing; zero is a set filter; the limit is not a clause."""
    assert search_clauses(query, lambda _: "?") == (clauses, params)


def test_placeholders_are_numbered_in_parameter_order() -> None:
    """PostgreSQL's ``$n`` must name the n-th parameter of the list."""
    query = SearchQuery(client_id=IFMS, decision="denied", until=9.0)

    clauses, params = search_clauses(query, lambda n: f"${n}")

    assert clauses == ["client_id = $1", "decision = $2", "ts < $3"]
    assert params == [IFMS, "denied", 9.0]


def test_a_value_never_enters_the_sql_text() -> None:
    """A hostile filter value travels as a parameter only."""
    hostile = "x' OR '1'='1"

    clauses, params = search_clauses(SearchQuery(message_id=hostile), lambda _: "?")

    assert hostile not in " ".join(clauses)
    assert params == [hostile]


# -- stored rows ---------------------------------------------------------------------


def test_columns_follow_the_order_of_record_columns() -> None:
    """Each value lands in the column of its name, whatever the dialect."""
    sealed = seal(record(0), 0, "")

    stored = dict(zip(RECORD_COLUMNS, columns(sealed), strict=True))

    assert stored == {name: getattr(sealed, name) for name in RECORD_COLUMNS}


def test_a_stored_record_holds_plain_bytes() -> None:
    """Drivers hand back memoryview or bytearray; the row keeps bytes."""
    row = (3, "ab" * 32, memoryview(b"leaf"), bytearray(b"{}"))

    stored = stored_record(row)

    assert stored == StoredRecord(3, "ab" * 32, b"leaf", b"{}")
    assert (type(stored.leaf_hash), type(stored.canonical)) == (bytes, bytes)


def test_an_archive_entry_reads_back_from_its_columns() -> None:
    original = entry(0, 5)

    assert archive_entry(archive_columns(original)) == original


def test_an_archive_row_is_converted_to_its_field_types() -> None:
    """PostgreSQL may hand back integers where the entry keeps floats."""
    row = ("a.zip", "2023-11", 1_700_006_400, 0, 5, 5, "cd" * 32, 1_700_010_000)

    read = archive_entry(row)

    assert (type(read.period_end), type(read.created)) == (float, float)
    assert read.end_seq == 5


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'"a checkpoint"',
        orjson.dumps({k: v for k, v in CHECKPOINT.to_dict().items() if k != "key_id"}),
        orjson.dumps({**CHECKPOINT.to_dict(), "tree_size": -1}),
        orjson.dumps({**CHECKPOINT.to_dict(), "tree_size": "8"}),
        orjson.dumps({**CHECKPOINT.to_dict(), "tree_size": True}),
    ],
    ids=[
        "not-json",
        "list",
        "string",
        "missing-field",
        "negative-size",
        "text-size",
        "bool-size",
    ],
)
def test_an_unreadable_checkpoint_row_is_none(body: bytes) -> None:
    """The verifier names such a row instead of failing to read the log."""
    assert checkpoint_or_none(body) is None


def test_a_checkpoint_row_reads_back() -> None:
    assert checkpoint_or_none(CHECKPOINT.to_json()) == CHECKPOINT


# -- paged reads ---------------------------------------------------------------------


class Pages(PagedReads):
    """Paged reads over fixed pages; remembers whether the pages were closed."""

    def __init__(self, pages: list[list[tuple[Any, ...]]]) -> None:
        self.pages = pages
        self.selects: list[tuple[str, int]] = []
        self.closed = False

    async def _pages(self, select: str, start: int) -> AsyncGenerator[list[Any], None]:
        self.selects.append((select, start))
        try:
            for page in self.pages:
                yield page
        finally:
            self.closed = True


async def test_records_are_read_page_by_page_from_start() -> None:
    pages = Pages([[(4, "h4", b"l4", b"c4")], [(5, "h5", b"l5", b"c5")]])

    read = [chunk async for chunk in pages.iter_records(4)]

    assert read == [
        [StoredRecord(4, "h4", b"l4", b"c4")],
        [StoredRecord(5, "h5", b"l5", b"c5")],
    ]
    assert pages.selects[0][1] == 4


async def test_leaf_hashes_are_the_second_column_of_each_row() -> None:
    pages = Pages([[(0, memoryview(b"l0")), (1, b"l1")]])

    read = [chunk async for chunk in pages.iter_leaf_hashes()]

    assert read == [[b"l0", b"l1"]]


async def test_archived_leaves_keep_seq_hash_and_leaf() -> None:
    pages = Pages([[(0, "h0", b"l0")]])

    read = [chunk async for chunk in pages.iter_archived_leaves()]

    assert read == [[ArchivedLeaf(0, "h0", b"l0")]]


async def test_a_reader_that_stops_early_closes_the_pages() -> None:
    """Leaving the loop must release the database cursor at once, not at GC."""
    pages = Pages([[(0, "h0", b"l0", b"c0")], [(1, "h1", b"l1", b"c1")]])

    chunks = pages.iter_records()
    await anext(chunks)
    await chunks.aclose()

    assert pages.closed


# -- search, on each store -----------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "seqs"),
    [
        (SearchQuery(), [5, 4, 3, 2, 1, 0]),
        (SearchQuery(client_id=IFMS), [4, 2, 0]),
        (SearchQuery(service_id=SCHOOLS), [3, 2]),
        (SearchQuery(decision="denied"), [3, 0]),
        (SearchQuery(message_id="msg-shared"), [4, 3]),
        (SearchQuery(subject_hash=SUBJECT), [2, 0]),
        (SearchQuery(client_id=IFMS, decision="forwarded"), [4, 2]),
        (SearchQuery(client_id="WB/GOV/FIN/unknown"), []),
        (SearchQuery(limit=2), [5, 4]),
    ],
    ids=[
        "all",
        "client",
        "service",
        "decision",
        "message",
        "subject",
        "client-and-decision",
        "no-match",
        "limit",
    ],
)
async def test_search_returns_the_matching_records_newest_first(
    store: LogStore, query: SearchQuery, seqs: list[int]
) -> None:
    found = await store.search(query)

    assert [row.seq for row in found] == seqs


async def test_search_since_is_inclusive_and_until_exclusive(store: LogStore) -> None:
    found = await store.search(SearchQuery(since=ts(1), until=ts(4)))

    assert [row.seq for row in found] == [3, 2, 1]


async def test_search_returns_the_rows_as_stored(store: LogStore) -> None:
    (found,) = await store.search(SearchQuery(message_id="msg-2"))

    assert found == (await store.get_range(2, 3))[0]
    assert orjson.loads(found.canonical)["seq"] == 2


# -- prune, on each store ------------------------------------------------------------


async def test_a_prune_keeps_the_hashes_of_the_records_it_removes(
    store: LogStore,
) -> None:
    before = await store.get_range(0, 6)
    tail = await store.tail()

    await store.prune(entry(0, 2))

    kept = [leaf async for chunk in store.iter_archived_leaves() for leaf in chunk]
    assert kept == [ArchivedLeaf(r.seq, r.hash, r.leaf_hash) for r in before[:2]]
    assert await store.get_range(0, 6) == before[2:]
    assert await store.archives() == [entry(0, 2)]
    assert await store.tail() == tail


@pytest.mark.parametrize(
    ("span", "operation"),
    [
        ((1, 3), "prune_not_at_start"),
        ((0, 7), "prune_not_contiguous"),
        ((0, 30), "prune_not_contiguous"),
    ],
    ids=["after-start", "past-tail", "far-past-tail"],
)
async def test_a_prune_that_would_leave_a_gap_changes_nothing(
    store: LogStore, span: tuple[int, int], operation: str
) -> None:
    """Archived records must stay a prefix of the log, every one of them kept."""
    before = await store.get_range(0, 6)

    with pytest.raises(StoreError, match=f"failed: {operation}$"):
        await store.prune(entry(*span))

    assert await store.archived_size() == 0
    assert await store.archives() == []
    assert await store.get_range(0, 6) == before


async def test_a_second_prune_must_start_where_the_first_ended(
    store: LogStore,
) -> None:
    await store.prune(entry(0, 2))

    with pytest.raises(StoreError, match="prune_not_at_start"):
        await store.prune(entry(0, 4))
    await store.prune(entry(2, 4))

    assert await store.archived_size() == 4


async def test_a_prune_over_a_missing_record_changes_nothing(
    backend: Backend, store: LogStore
) -> None:
    await backend.tamper(("DELETE FROM records WHERE seq = ?", (1,)))

    with pytest.raises(StoreError, match="prune_not_contiguous"):
        await store.prune(entry(0, 3))

    assert await store.archived_size() == 0
    assert [row.seq for row in await store.get_range(0, 6)] == [0, 2, 3, 4, 5]


async def test_prune_records_the_entry_as_given(store: LogStore) -> None:
    """The archive list reads back exactly, float times and digest included."""
    made = dataclasses.replace(entry(0, 3), period_end=1_700_006_400.5)

    await store.prune(made)

    assert await store.archives() == [made]


# -- checkpoints ---------------------------------------------------------------------


async def test_a_checkpoint_smaller_than_a_stored_one_is_refused(
    store: LogStore,
) -> None:
    """Both stores: a checkpoint never goes back behind one already saved."""
    await store.save_checkpoint(CHECKPOINT)
    same = dataclasses.replace(CHECKPOINT, timestamp=CHECKPOINT.timestamp + 1)
    await store.save_checkpoint(same)

    with pytest.raises(StoreError, match="checkpoint_out_of_order"):
        await store.save_checkpoint(dataclasses.replace(CHECKPOINT, tree_size=7))

    assert [c.checkpoint for c in await store.checkpoints()] == [CHECKPOINT, same]


def test_reads_select_every_record_column_in_order() -> None:
    """stored_record takes the search columns by position."""
    selected = SELECT_RECORDS.removeprefix("SELECT ").removesuffix(" FROM records")
    assert tuple(selected.split(", ")) == RECORD_COLUMNS
