"""Access rights: compiled patterns, default deny, and config errors."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.errors import AccessDeniedError, ConfigError, Reason
from gateway.identifiers import ClientId, ServiceId
from policies.access import AccessPolicy, compile_pattern

STUDENTS = ServiceId.parse("WB/GOV/SED/banglarshiksha/students")
SCHOOLS = ServiceId.parse("WB/GOV/SED/banglarshiksha/schools")
REGISTRY = ClientId.parse("WB/GOV/SED/banglarshiksha")
KANYASHREE = ClientId.parse("WB/GOV/WCD/kanyashree")
SABOOJSATHI = ClientId.parse("WB/GOV/BCW/saboojsathi")
IFMS = ClientId.parse("WB/GOV/FIN/ifms")
AIKYASHREE = ClientId.parse("WB/GOV/MAME/aikyashree")


@pytest.mark.parametrize(
    ("client", "service", "request_line", "rule_id"),
    [
        (KANYASHREE, STUDENTS, "POST /verify-enrolment", "kanyashree-verify"),
        (SABOOJSATHI, STUDENTS, "GET /roster/19110900503", "saboojsathi-roster"),
        (SABOOJSATHI, STUDENTS, "HEAD /roster/19110900503", "saboojsathi-roster"),
        (SABOOJSATHI, SCHOOLS, "GET /19110900503", "saboojsathi-schools"),
        (
            IFMS,
            STUDENTS,
            "POST /beneficiary-check",
            "ifms-bank-account-verify",
        ),
    ],
)
def test_allowed_request_returns_its_rule(
    access: AccessPolicy,
    client: ClientId,
    service: ServiceId,
    request_line: str,
    rule_id: str,
) -> None:
    method, path = request_line.split(" ")

    rule = access.check(client, service, method, path)

    assert rule.id == rule_id
    assert rule.client == client
    assert rule.service == service


@pytest.mark.parametrize(
    ("client", "service", "method", "path"),
    [
        # wrong method
        (KANYASHREE, STUDENTS, "GET", "/verify-enrolment"),
        (KANYASHREE, STUDENTS, "HEAD", "/verify-enrolment"),
        (SABOOJSATHI, STUDENTS, "POST", "/"),
        (SABOOJSATHI, STUDENTS, "get", "/"),
        # wrong path
        (KANYASHREE, STUDENTS, "POST", "/verify-enrolment/x"),
        (KANYASHREE, STUDENTS, "POST", "/Verify-Enrolment"),
        (KANYASHREE, STUDENTS, "POST", "/WB201900001236"),
        (SABOOJSATHI, SCHOOLS, "GET", "/19110900503/teachers"),
        (IFMS, STUDENTS, "POST", "/bank-account/verify"),
        # paths no rule mentions
        (SABOOJSATHI, STUDENTS, "GET", "/EXPORT"),
        (SABOOJSATHI, STUDENTS, "GET", "/_debug/vars"),
        (KANYASHREE, STUDENTS, "POST", "/EXPORT"),
        # right endpoint, other service or client
        (KANYASHREE, SCHOOLS, "POST", "/verify-enrolment"),
        (IFMS, STUDENTS, "POST", "/verify-enrolment"),
        (AIKYASHREE, STUDENTS, "POST", "/verify-enrolment"),
        (REGISTRY, STUDENTS, "GET", "/"),
        (ClientId.parse("WB/GOV/XYZ/unknown"), STUDENTS, "GET", "/"),
    ],
)
def test_request_no_rule_names_is_denied(
    access: AccessPolicy, client: ClientId, service: ServiceId, method: str, path: str
) -> None:
    with pytest.raises(AccessDeniedError) as caught:
        access.check(client, service, method, path)

    assert caught.value.reason is Reason.ACCESS_DENIED


def test_match_captures_path_parameters(access: AccessPolicy) -> None:
    found = access.match(SABOOJSATHI, STUDENTS, "GET", "/roster/19110900503")

    assert found.params == {"udise_code": "19110900503"}
    assert found.pattern == "/roster/{udise_code}"


def test_allowed_lists_endpoints_of_one_provider(access: AccessPolicy) -> None:
    assert access.allowed(SABOOJSATHI, REGISTRY) == [
        (SCHOOLS, "GET", "/"),
        (SCHOOLS, "GET", "/{udise_code}"),
        (STUDENTS, "GET", "/roster/{udise_code}"),
    ]
    assert access.allowed(AIKYASHREE, REGISTRY) == [
        (STUDENTS, "POST", "/minority-enrolment")
    ]


def test_empty_policy_denies_everything(write_yaml: Callable[[str, str], Path]) -> None:
    policy = AccessPolicy.load(write_yaml("access.yaml", "rights: []\n"), set())

    with pytest.raises(AccessDeniedError):
        policy.check(KANYASHREE, STUDENTS, "GET", "/")


@pytest.mark.parametrize(
    ("pattern", "matches", "misses"),
    [
        ("/", ["/"], ["/a", ""]),
        ("/a/{id}", ["/a/1", "/a/x.y"], ["/a", "/a/", "/a/1/2", "/b/1"]),
        ("/a/**", ["/a", "/a/b", "/a/b/c"], ["/ab", "/b/a", "/"]),
        ("/**", ["/", "/x", "/x/y"], []),
        ("/{a}/x/{b}", ["/1/x/2"], ["/1/y/2", "/1/x"]),
        ("/a.b", ["/a.b"], ["/aXb"]),
    ],
)
def test_pattern_matches_exactly_its_paths(
    pattern: str, matches: list[str], misses: list[str]
) -> None:
    regex = compile_pattern(pattern)

    assert [p for p in matches if regex.fullmatch(p)] == matches
    assert [p for p in misses if regex.fullmatch(p)] == []


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("students", "starts with '/'"),
        ("/**/x", "last segment"),
        ("/a//b", "not a literal"),
        ("/a/../b", "not a literal"),
        ("/{a}/{a}", "appears twice"),
        ("/{}", "not a literal"),
        ("/a*", "not a literal"),
        ("/a%2Fb", "not a literal"),
    ],
)
def test_malformed_pattern_is_refused(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        compile_pattern(pattern)


RIGHT = """
rights:
  - id: r1
    service: WB/GOV/SED/banglarshiksha/students
    client: WB/GOV/WCD/kanyashree
    endpoints:
      - {method: POST, path: /verify-enrolment}
    purposes: [p1]
"""


@pytest.mark.parametrize(
    ("old", "new", "line", "message"),
    [
        ("POST", "FETCH", 6, "method must be one of"),
        ("/verify-enrolment", "verify-enrolment", 6, "starts with '/'"),
        ("[p1]", "[p2]", 7, "unknown purpose 'p2'"),
        ("WB/GOV/WCD/kanyashree", "WB/GOV/WCD", 4, "not a subsystem id"),
        ("banglarshiksha/students", "banglarshiksha", 3, "not a service id"),
        ("id: r1", "id: R 1", 2, "a rule id is"),
        ("[p1]", "[p1]\n    rate: lots", 8, "not a rate"),
        ("[p1]", "[p1]\n    colour: red", 8, "Extra inputs are not permitted"),
    ],
)
def test_config_error_names_file_and_line(
    write_yaml: Callable[[str, str], Path], old: str, new: str, line: int, message: str
) -> None:
    path = write_yaml("access.yaml", RIGHT.replace(old, new))

    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        AccessPolicy.load(path, {"p1"})

    assert caught.value.file == str(path)
    assert caught.value.line == line


def test_rule_id_used_twice_is_a_config_error(
    write_yaml: Callable[[str, str], Path],
) -> None:
    twice = RIGHT + RIGHT.replace("rights:\n", "")
    path = write_yaml("access.yaml", twice)

    with pytest.raises(ConfigError, match="used twice") as caught:
        AccessPolicy.load(path, {"p1"})

    assert caught.value.line == 9
