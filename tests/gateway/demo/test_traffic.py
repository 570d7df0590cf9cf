"""The demo's departmental traffic: the requests it sends and the answers it expects."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt
import orjson
import pytest

from gateway import wire
from gateway.client import Answer, DepartmentClient, new_client_key
from gateway.demo import traffic
from gateway.demo.traffic import (
    IFMS,
    KANYASHREE,
    REFERENCE_DATE,
    SABOOJSATHI,
    Expectation,
    age_on,
    kanyashree_eligible,
)
from gateway.identifiers import ClientId
from gateway.keyring import SigningKey

pytestmark = pytest.mark.anyio

STUDENT_ID = "WB201300000018"
REGISTRY_ONLY = ("religion", "minority", "bank_account", "aadhaar", "guardian")


def student(**changes: Any) -> dict[str, Any]:
    """A registry record of a girl eligible for Kanyashree, with ``changes``."""
    return {
        "student_id": STUDENT_ID,
        "gender": "F",
        "class": 9,
        "date_of_birth": "2012-07-14",
        "enrolment_status": "enrolled",
        "bank_account": {"account_number": "30412345678", "ifsc": "SBIN0001234"},
        **changes,
    }


def answer(status: int = 200, body: Any = None, **headers: str) -> Answer:
    content = b"" if body is None else orjson.dumps(body)
    return Answer(status, httpx.Headers(headers), content, 1.0, True)


class Department:
    """Departmental clients over one mock transport that records each request."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.http = httpx.AsyncClient(transport=httpx.MockTransport(self._answer))

    def _answer(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, json={})

    def client(self, cid: ClientId, key: SigningKey | None = None) -> DepartmentClient:
        return DepartmentClient(
            client_id=cid,
            key=key or new_client_key(f"{cid.subsystem}-demo-1")[0],
            audience="https://mediator.shiksha.example",
            base_url="http://127.0.0.1:8080",
            http=self.http,
        )

    def sent(self) -> list[tuple[str, str, Any]]:
        """Method, path and JSON body of each request, in order."""
        return [
            (r.method, r.url.path, orjson.loads(r.content) if r.content else None)
            for r in self.requests
        ]


@pytest.fixture
def department() -> Iterator[Department]:
    """Sync, for the tests that only read expectations; the transport holds no
    connection, so closing it needs no running loop of the test's."""
    made = Department()
    try:
        yield made
    finally:
        asyncio.run(made.http.aclose())


async def send(jobs: list[tuple[str, Expectation, traffic.Call]]) -> None:
    for _client, _expected, call in jobs:
        await call()


# -- who is eligible -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("born", "on", "age"),
    [
        ("2013-03-31", REFERENCE_DATE, 14),
        ("2013-04-01", REFERENCE_DATE, 13),
        ("2012-02-29", dt.date(2027, 2, 28), 14),
        ("2012-02-29", dt.date(2027, 3, 1), 15),
    ],
    ids=["birthday today", "birthday tomorrow", "leap day before", "leap day after"],
)
def test_age_counts_completed_years(born: str, on: dt.date, age: int) -> None:
    assert age_on(born, on) == age


ELIGIBILITY: list[tuple[str, dict[str, Any], bool]] = [
    ("eligible girl", {}, True),
    ("boy", {"gender": "M"}, False),
    ("transgender student", {"gender": "T"}, False),
    ("class VII", {"class": 7}, False),
    ("class VIII", {"class": 8}, True),
    ("class XII", {"class": 12}, True),
    ("thirteen on the reference date", {"date_of_birth": "2014-03-31"}, True),
    ("twelve on the reference date", {"date_of_birth": "2014-04-01"}, False),
    ("eighteen on the reference date", {"date_of_birth": "2008-04-01"}, True),
    ("nineteen on the reference date", {"date_of_birth": "2008-03-31"}, False),
    ("transferred out", {"enrolment_status": "transferred_out"}, False),
    ("passed out", {"enrolment_status": "passed_out"}, False),
]


@pytest.mark.parametrize(
    ("changes", "eligible"),
    [c[1:] for c in ELIGIBILITY],
    ids=[c[0] for c in ELIGIBILITY],
)
def test_kanyashree_eligibility(changes: dict[str, Any], eligible: bool) -> None:
    """An enrolled girl in classes VIII-XII, 13 to 18 on the reference date."""
    assert kanyashree_eligible(student(**changes)) is eligible


# -- Kanyashree ------------------------------------------------------------------------


EXPECTATIONS: list[tuple[dict[str, Any] | None, str, str, int]] = [
    (student(), "none", "consent none", 403),
    (None, "revoked", "consent revoked", 403),
    (None, "active", "unknown id", 200),
    (student(enrolment_status="left"), "active", "not enrolled", 200),
    (student(gender="M"), "active", "boy", 200),
    (student(**{"class": 7}), "active", "outside age or class", 200),
    (student(), "active", "eligible", 200),
]


@pytest.mark.parametrize(
    ("record", "consent", "case", "status"),
    EXPECTATIONS,
    ids=[c[2] for c in EXPECTATIONS],
)
def test_each_applicant_expects_the_answer_of_its_case(
    department: Department,
    record: dict[str, Any] | None,
    consent: str,
    case: str,
    status: int,
) -> None:
    """Without an active consent nothing else matters: the node refuses."""
    client = department.client(KANYASHREE)
    ((name, expected, _call),) = traffic.kanyashree_jobs(
        client, [(STUDENT_ID, record, consent)]
    )

    assert name == "kanyashree"
    assert (expected.case, expected.status) == (case, status)


async def test_an_applicant_is_sent_with_the_registrys_date_of_birth(
    department: Department,
) -> None:
    """Kanyashree writes dates as DD/MM/YYYY; an unknown id gets a made-up one."""
    client = department.client(KANYASHREE)
    applicants = [(STUDENT_ID, student(), "active"), ("WB201990000017", None, "none")]

    await send(traffic.kanyashree_jobs(client, applicants))

    path = "/r1/WB/GOV/SED/banglarshiksha/students/verify-enrolment"
    assert department.sent() == [
        (
            "POST",
            path,
            {
                "applicant": {"registry_uid": STUDENT_ID, "dob": "14/07/2012"},
                "scheme_year": "2026-27",
            },
        ),
        (
            "POST",
            path,
            {
                "applicant": {"registry_uid": "WB201990000017", "dob": "01/01/2011"},
                "scheme_year": "2026-27",
            },
        ),
    ]
    purposes = {r.headers[wire.PURPOSE] for r in department.requests}
    assert purposes == {"kanyashree-eligibility"}


def kanyashree_check(
    department: Department, record: dict[str, Any] | None
) -> Callable[[Answer], bool]:
    client = department.client(KANYASHREE)
    ((_name, expected, _call),) = traffic.kanyashree_jobs(
        client, [(STUDENT_ID, record, "active")]
    )
    return expected.check


VERIFIED = {"is_enrolled": "Y", "dob_verified": "Y", "studying_in_class": "IX"}


def test_verified_facts_of_the_right_class_are_as_expected(
    department: Department,
) -> None:
    assert kanyashree_check(department, student())(answer(body=VERIFIED))


@pytest.mark.parametrize("field", REGISTRY_ONLY)
def test_a_registry_only_field_in_kanyashrees_answer_is_not_as_expected(
    department: Department, field: str
) -> None:
    """The adapter must not pass on what Kanyashree has no right to see."""
    leaked = {**VERIFIED, field: "anything"}

    assert not kanyashree_check(department, student())(answer(body=leaked))


@pytest.mark.parametrize(
    "changes",
    [
        {"studying_in_class": "X"},
        {"dob_verified": "N"},
        {"is_enrolled": "N"},
        {"is_enrolled": None},
    ],
    ids=["wrong class", "date of birth not verified", "not enrolled", "no answer"],
)
def test_a_wrong_fact_in_kanyashrees_answer_is_not_as_expected(
    department: Department, changes: dict[str, Any]
) -> None:
    assert not kanyashree_check(department, student())(
        answer(body={**VERIFIED, **changes})
    )


@pytest.mark.parametrize(
    ("record", "is_enrolled", "ok"),
    [
        (None, "N", True),
        (None, "Y", False),
        (student(enrolment_status="left"), "N", True),
        (student(enrolment_status="left"), "Y", False),
    ],
    ids=["unknown, not enrolled", "unknown, enrolled", "left, no", "left, yes"],
)
def test_an_applicant_not_on_the_roll_must_be_answered_not_enrolled(
    department: Department, record: dict[str, Any] | None, is_enrolled: str, ok: bool
) -> None:
    check = kanyashree_check(department, record)
    assert check(answer(body={"is_enrolled": is_enrolled})) is ok


# -- SaboojSathi and iFMS --------------------------------------------------------------


async def test_each_roster_job_asks_for_its_own_school(department: Department) -> None:
    client = department.client(SABOOJSATHI)
    rosters = {"19110900503": 3, "19160102001": 0, "19070304002": 12}

    await send(traffic.saboojsathi_jobs(client, rosters))

    paths = [r.url.path.rsplit("/", 1)[-1] for r in department.requests]
    assert paths == list(rosters)
    purposes = {r.headers[wire.PURPOSE] for r in department.requests}
    assert purposes == {"saboojsathi-roster"}


ROW = {"uid": "x", "beneficiary_name": "A", "gender": "F", "section": "A"}


@pytest.mark.parametrize(
    ("rows", "ok"),
    [
        ([ROW, ROW], True),
        ([ROW], False),
        ([ROW, ROW, ROW], False),
        ([ROW, {**ROW, "aadhaar": "XXXX XXXX 1234"}], False),
        ([ROW, {**ROW, "religion": "Hindu"}], False),
    ],
    ids=["same count", "one short", "one more", "aadhaar leaked", "religion leaked"],
)
def test_a_roster_must_have_the_registrys_count_and_only_roster_fields(
    department: Department, rows: list[dict[str, Any]], ok: bool
) -> None:
    client = department.client(SABOOJSATHI)
    ((_name, expected, _call),) = traffic.saboojsathi_jobs(client, {"19110900503": 2})

    assert expected.check(answer(body={"beneficiaries": rows})) is ok


@pytest.mark.parametrize(
    ("account", "wrong"),
    [("30412345678", "30412345679"), ("30412345679", "30412345670")],
    ids=["last digit up", "nine wraps to zero"],
)
async def test_a_wrong_account_differs_in_its_last_digit(
    department: Department, account: str, wrong: str
) -> None:
    client = department.client(IFMS)
    record = student(bank_account={"account_number": account, "ifsc": "SBIN0001234"})

    jobs = traffic.ifms_jobs(client, [(record, True), (record, False)])
    await send(jobs)

    sent = [body["bankAccountNo"] for _m, _p, body in department.sent()]
    assert sent == [account, wrong]
    assert [expected.case for _n, expected, _c in jobs] == [
        "account matches",
        "wrong account",
    ]


@pytest.mark.parametrize(("right", "validated"), [(True, "Y"), (False, "N")])
def test_ifms_expects_the_account_validated_only_when_it_is_right(
    department: Department, right: bool, validated: str
) -> None:
    client = department.client(IFMS)
    ((_name, expected, _call),) = traffic.ifms_jobs(client, [(student(), right)])
    other = "N" if validated == "Y" else "Y"

    assert expected.check(answer(body={"accountValidated": validated}))
    assert not expected.check(answer(body={"accountValidated": other}))


# -- hostile requests ------------------------------------------------------------------


async def test_hostile_requests_expect_refusals(department: Department) -> None:
    kanyashree = department.client(KANYASHREE)
    jobs = traffic.hostile_jobs(
        kanyashree, department.client(SABOOJSATHI), department.client, STUDENT_ID
    )

    assert [(e.case, e.status) for _n, e, _c in jobs] == [
        ("unknown client", 401),
        ("bad signature", 401),
        ("outside access rights", 403),
        ("no purpose declared", 403),
        ("encoded dot-segments to /export", 403),
        ("assertion first use", 200),
        ("assertion replayed", 401),
    ]


async def test_the_dot_segments_reach_the_node_as_written(
    department: Department,
) -> None:
    """The case tests the node's path rules, not the client library's."""
    jobs = traffic.hostile_jobs(
        department.client(KANYASHREE),
        department.client(SABOOJSATHI),
        department.client,
        STUDENT_ID,
    )
    (call,) = [c for _n, e, c in jobs if "dot-segments" in e.case]

    await call()

    assert department.requests[-1].url.raw_path.endswith(
        b"/verify-enrolment/%2e%2e/export"
    )


async def test_the_replayed_assertion_is_the_one_used_first(
    department: Department,
) -> None:
    """Only the last two requests share a token; every other one has its own."""
    jobs = traffic.hostile_jobs(
        department.client(KANYASHREE),
        department.client(SABOOJSATHI),
        department.client,
        STUDENT_ID,
    )

    await send(jobs)

    tokens = [r.headers["authorization"] for r in department.requests]
    assert tokens[-1] == tokens[-2]
    assert len(set(tokens[:-1])) == len(tokens) - 1


async def test_the_impostor_claims_kanyashree_with_a_key_of_its_own(
    department: Department,
) -> None:
    """Same client id and key id as Kanyashree's, signed by another key."""
    key, _jwk = new_client_key("kanyashree-demo-1")
    kanyashree = department.client(KANYASHREE, key)
    jobs = traffic.hostile_jobs(
        kanyashree, department.client(SABOOJSATHI), department.client, STUDENT_ID
    )

    await send(jobs[:2])

    stranger, impostor = department.requests
    assert stranger.headers[wire.XROAD_CLIENT] == "WB/GOV/XYZ/stranger"
    assert impostor.headers[wire.XROAD_CLIENT] == str(KANYASHREE)
    token = impostor.headers["authorization"].removeprefix("Bearer ")
    assert jwt.get_unverified_header(token)["kid"] == "kanyashree-demo-1"
    with pytest.raises(jwt.InvalidSignatureError, match="Signature verification"):
        jwt.decode(token, key.private_key.public_key(), algorithms=["EdDSA"])


# -- running and judging ---------------------------------------------------------------


async def test_outcomes_follow_the_jobs_and_judge_status_and_check() -> None:
    async def ok() -> Answer:
        return answer(200, {"is_enrolled": "Y"})

    async def refused() -> Answer:
        return answer(403, **{wire.XROAD_ERROR: "Client.access_denied"})

    enrolled = Expectation("enrolled", 200, lambda a: a.json()["is_enrolled"] == "Y")
    jobs: list[tuple[str, Expectation, traffic.Call]] = [
        ("a", enrolled, ok),
        ("b", Expectation("refused", 403), refused),
        ("c", Expectation("wrong status", 200), refused),
        ("d", Expectation("failed check", 200, lambda _a: False), ok),
    ]

    outcomes = await traffic.run_all(jobs)

    assert [
        (o.client, o.case, o.status, o.reason, o.as_expected) for o in outcomes
    ] == [
        ("a", "enrolled", 200, "ok", True),
        ("b", "refused", 403, "access_denied", True),
        ("c", "wrong status", 403, "access_denied", False),
        ("d", "failed check", 200, "ok", False),
    ]


async def test_an_unsigned_answer_is_recorded_as_such() -> None:
    async def unsigned() -> Answer:
        return Answer(200, httpx.Headers(), b"{}", 2.5, False)

    (outcome,) = await traffic.run_all([("a", Expectation("x", 200), unsigned)])

    assert (outcome.as_expected, outcome.signature_ok, outcome.elapsed_ms) == (
        True,
        False,
        2.5,
    )


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_no_more_calls_than_the_concurrency_run_at_once(concurrency: int) -> None:
    running, most = 0, 0

    async def call() -> Answer:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.001)
        running -= 1
        return answer()

    jobs: list[tuple[str, Expectation, traffic.Call]] = [
        ("a", Expectation("x", 200), call) for _ in range(12)
    ]

    await traffic.run_all(jobs, concurrency=concurrency)

    assert most == concurrency


def test_shuffled_is_a_fixed_permutation_of_a_copy() -> None:
    jobs = list(range(20))

    first = traffic.shuffled(jobs)

    assert first == traffic.shuffled(jobs)
    assert first != jobs
    assert sorted(first) == jobs
    assert jobs == list(range(20))
    assert traffic.shuffled(jobs, seed=8) != first
