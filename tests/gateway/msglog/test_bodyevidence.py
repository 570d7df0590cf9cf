"""Encrypted bodies in evidence bundles: which files are written, what is checked."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Mapping
from typing import Any, cast

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gateway.msglog.bodies import BodyKeyError, PeriodKey
from gateway.msglog.bodyevidence import body_files, body_problems
from gateway.msglog.bodylog import BodyLog
from gateway.msglog.records import canonical_bytes
from gateway.msglog.store import LogStore, StoredRecord

pytestmark = pytest.mark.anyio

STUDENTS = "WB/GOV/SED/banglarshiksha/students"
LABEL = "2024-06.0a1b2c3d"
REQUEST, RESPONSE = b'{"student_id": "WB201900012342"}', b'{"name": "Mita"}'


class BodyStore:
    """The two reads of encrypted bodies a log store answers, from memory."""

    def __init__(self, bodies: Mapping[int, bytes], keys: Mapping[str, bytes]) -> None:
        self._bodies = dict(bodies)
        self._keys = dict(keys)
        self.asked: list[list[int]] = []

    async def bodies(self, seqs: list[int]) -> dict[int, bytes]:
        self.asked.append(seqs)
        return {seq: self._bodies[seq] for seq in seqs if seq in self._bodies}

    async def body_key(self, label: str) -> bytes | None:
        return self._keys.get(label)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def rows(*seqs: int) -> list[StoredRecord]:
    return [StoredRecord(seq, "", b"", b"") for seq in seqs]


@pytest.fixture
def officer() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


@pytest.fixture
def period_key(officer: X25519PrivateKey) -> PeriodKey:
    return PeriodKey.new(LABEL, {"so-1": officer.public_key()})


def sealed(
    key: PeriodKey, bodies: tuple[bytes | None, bytes | None], message_id: str
) -> bytes:
    """The stored entries of one exchange's bodies, as the log keeps them."""
    log = BodyLog({}, {STUDENTS: None}, cast(Any, None))
    return log.seal(key, STUDENTS, message_id, bodies).stored


def store_of(key: PeriodKey, bodies: Mapping[int, bytes]) -> LogStore:
    keys = {key.period: canonical_bytes(key.envelope)}
    return cast(LogStore, BodyStore(bodies, keys))


# -- body_files ----------------------------------------------------------------------


async def test_records_without_bodies_add_no_files(period_key: PeriodKey) -> None:
    store = store_of(period_key, {})

    assert await body_files(store, rows(0, 1), None) == {}


async def test_without_a_key_the_entries_are_exported_exactly_as_stored(
    period_key: PeriodKey,
) -> None:
    """The bundle holds the stored bytes, so their digest is the record's."""
    stored = sealed(period_key, (REQUEST, RESPONSE), "msg-4")
    store = store_of(period_key, {4: stored})

    files = await body_files(store, rows(3, 4), None)

    assert files == {"bodies/4.json": stored}


async def test_with_the_officer_key_the_exact_bodies_are_added(
    period_key: PeriodKey, officer: X25519PrivateKey
) -> None:
    stored = sealed(period_key, (REQUEST, RESPONSE), "msg-4")
    store = store_of(period_key, {4: stored})

    files = await body_files(store, rows(4), officer)

    assert files == {
        "bodies/4.json": stored,
        "bodies/4.request.bin": REQUEST,
        "bodies/4.response.bin": RESPONSE,
    }


async def test_a_part_logged_as_digest_only_has_no_plaintext_file(
    period_key: PeriodKey, officer: X25519PrivateKey
) -> None:
    """An empty body is logged as its digest; there is nothing to open."""
    stored = sealed(period_key, (None, RESPONSE), "msg-4")
    store = store_of(period_key, {4: stored})

    files = await body_files(store, rows(4), officer)

    assert sorted(files) == ["bodies/4.json", "bodies/4.response.bin"]


async def test_entries_without_a_key_label_are_exported_unopened(
    officer: X25519PrivateKey,
) -> None:
    """Both bodies empty: no ciphertext, so no data key is looked up."""
    stored = sealed(PeriodKey.new(LABEL, {}), (None, None), "msg-4")
    store = cast(LogStore, BodyStore({4: stored}, {}))

    files = await body_files(store, rows(4), officer)

    assert files == {"bodies/4.json": stored}


async def test_a_data_key_missing_from_the_store_is_refused(
    period_key: PeriodKey, officer: X25519PrivateKey
) -> None:
    stored = sealed(period_key, (REQUEST, RESPONSE), "msg-4")
    store = cast(LogStore, BodyStore({4: stored}, {}))

    with pytest.raises(BodyKeyError, match="data key of the bodies is not stored"):
        await body_files(store, rows(4), officer)


async def test_another_officers_key_is_refused(period_key: PeriodKey) -> None:
    stored = sealed(period_key, (REQUEST, RESPONSE), "msg-4")
    store = store_of(period_key, {4: stored})

    with pytest.raises(BodyKeyError, match="opens no copy of the data key"):
        await body_files(store, rows(4), X25519PrivateKey.generate())


async def test_entries_moved_to_another_record_do_not_open(
    period_key: PeriodKey, officer: X25519PrivateKey
) -> None:
    """The ciphertext is bound to its message id and part."""
    stored = sealed(period_key, (REQUEST, RESPONSE), "msg-4")
    moved = stored.replace(b'"message_id":"msg-4"', b'"message_id":"msg-5"')
    store = store_of(period_key, {5: moved})

    with pytest.raises(BodyKeyError, match="data key does not open the body"):
        await body_files(store, rows(5), officer)


# -- body_problems -------------------------------------------------------------------


@pytest.fixture
def stored(period_key: PeriodKey) -> bytes:
    return sealed(period_key, (REQUEST, RESPONSE), "msg-4")


def record_of(stored: bytes, **changes: Any) -> dict[str, Any]:
    """The fields of record 4 that name its bodies' digests."""
    return {
        "bodies_sha256": sha(stored),
        "request_body_sha256": sha(REQUEST),
        "response_body_sha256": sha(RESPONSE),
        **changes,
    }


def bundle_of(files: Mapping[str, bytes]) -> zipfile.ZipFile:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in files.items():
            bundle.writestr(name, data)
    return zipfile.ZipFile(buffer)


def opened(
    stored: bytes, request: bytes = REQUEST, response: bytes = RESPONSE
) -> dict[str, bytes]:
    return {
        "bodies/4.json": stored,
        "bodies/4.request.bin": request,
        "bodies/4.response.bin": response,
    }


def test_a_record_without_bodies_has_no_body_problems() -> None:
    assert body_problems(bundle_of({}), 4, {"request_body_sha256": ""}) == []


def test_the_entries_alone_hold(stored: bytes) -> None:
    """A bundle exported without the officer's key has no plaintext to check."""
    bundle = bundle_of({"bodies/4.json": stored})

    assert body_problems(bundle, 4, record_of(stored)) == []


def test_the_opened_bodies_hold(stored: bytes) -> None:
    assert body_problems(bundle_of(opened(stored)), 4, record_of(stored)) == []


def test_missing_entries_are_a_problem(stored: bytes) -> None:
    problems = body_problems(bundle_of({}), 4, record_of(stored))

    assert problems == ["bodies of seq 4 are missing from the bundle"]


def test_entries_of_another_record_are_a_problem(stored: bytes) -> None:
    """The entries are looked up by the record's own seq."""
    bundle = bundle_of({"bodies/5.json": stored})

    problems = body_problems(bundle, 4, record_of(stored))

    assert problems == ["bodies of seq 4 are missing from the bundle"]


def test_changed_entries_do_not_match_the_record(stored: bytes) -> None:
    changed = stored.replace(b'"ciphertext":"', b'"ciphertext":"AAAA', 1)
    bundle = bundle_of({"bodies/4.json": changed})

    problems = body_problems(bundle, 4, record_of(stored))

    assert problems == ["bodies of seq 4 do not match the digest in the record"]


@pytest.mark.parametrize(
    ("files", "problems"),
    [
        (
            {"request": b"forged"},
            ["request body of seq 4 does not match its digest"],
        ),
        (
            {"response": b"forged"},
            ["response body of seq 4 does not match its digest"],
        ),
        (
            {"request": b"forged", "response": b"forged"},
            [
                "request body of seq 4 does not match its digest",
                "response body of seq 4 does not match its digest",
            ],
        ),
        (
            {"request": RESPONSE, "response": REQUEST},
            [
                "request body of seq 4 does not match its digest",
                "response body of seq 4 does not match its digest",
            ],
        ),
    ],
    ids=["request", "response", "both", "swapped"],
)
def test_a_changed_plaintext_is_named_by_its_part(
    stored: bytes, files: dict[str, bytes], problems: list[str]
) -> None:
    bundle = bundle_of(opened(stored, **files))

    assert body_problems(bundle, 4, record_of(stored)) == problems


def test_a_plaintext_must_match_the_record_as_well_as_the_entry(
    stored: bytes,
) -> None:
    """Entries and plaintext that agree prove nothing if the record disagrees."""
    record = record_of(stored, request_body_sha256=sha(b"what the client sent"))

    problems = body_problems(bundle_of(opened(stored)), 4, record)

    assert problems == ["request body of seq 4 does not match its digest"]


def test_a_plaintext_added_for_a_digest_only_part_is_a_problem(
    period_key: PeriodKey,
) -> None:
    """A body the log kept only as a digest cannot be supplied afterwards."""
    stored = sealed(period_key, (None, RESPONSE), "msg-4")
    record = record_of(stored, request_body_sha256=sha(b""))
    bundle = bundle_of(opened(stored, request=b"added later"))

    problems = body_problems(bundle, 4, record)

    assert problems == ["request body of seq 4 does not match its digest"]
