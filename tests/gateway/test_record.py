"""The record of one exchange: step timings and the three forms it is logged in."""

from __future__ import annotations

import time
import types

import orjson
import pytest

from gateway import record as record_module
from gateway.record import Decision, ExchangeRecord, sha256_hex

REQUEST_BODY = b'{"student_id":"WB201900000013","aadhaar":"999901234563"}'
RESPONSE_BODY = b'{"name":"Sample Student"}'

#: Fields that name a person or a place on the network: message log only.
PERSONAL = {
    "path",
    "peer",
    "client_ip",
    "claimed_forwarded_for",
    "user_id",
    "subject_hash",
    "consent_id",
}


def _record() -> ExchangeRecord:
    return ExchangeRecord(
        node_id="WB/GOV/SED/mediator-1",
        method="POST",
        path="/r1/WB/GOV/SED/banglarshiksha/students/applicants",
        peer="10.20.0.9",
    )


def _finished() -> ExchangeRecord:
    """A forwarded exchange with every outcome field filled in."""
    done = _record()
    done.client_id = "WB/GOV/WCD/kanyashree"
    done.rule_id = "kanyashree-applicants"
    done.purpose = "scholarship"
    done.forwarded_body_sha256 = sha256_hex(REQUEST_BODY)
    done.request_signature_kid = "node-ed-1"
    done.request_body = REQUEST_BODY
    done.response_body = RESPONSE_BODY
    done.request_logged = True
    done.decision = Decision.FORWARDED
    done.status = 502
    done.reason = "upstream_signature_invalid"
    done.upstream_called = True
    done.upstream_attempts = 2
    done.upstream_status = 200
    done.upstream_body_sha256 = sha256_hex(RESPONSE_BODY)
    done.response_body_sha256 = sha256_hex(b"{}")
    done.upstream_signature_kid = "registry-1"
    done.response_signature_kid = "node-ed-1"
    return done


class _Clock:
    """``time`` for the record module, with a perf counter that can be moved on."""

    def __init__(self) -> None:
        self.shift = 0.0

    def perf_counter(self) -> float:
        return time.perf_counter() + self.shift


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    fake = _Clock()
    monkeypatch.setattr(
        record_module, "time", types.SimpleNamespace(perf_counter=fake.perf_counter)
    )
    return fake


def test_entering_a_step_closes_the_timing_of_the_one_before(clock: _Clock) -> None:
    """The time spent is filed under the step that was running, in milliseconds."""
    current = _record()

    clock.shift += 0.25
    current.enter("authenticate")
    clock.shift += 0.5
    current.enter("resolve")

    assert current.step == "resolve"
    assert list(current.durations_ms) == ["frame", "authenticate"]
    assert 250 <= current.durations_ms["frame"] < 300
    assert 500 <= current.durations_ms["authenticate"] < 550


def test_a_new_record_says_rejected_at_framing() -> None:
    """A record that went no further fails closed: nothing forwarded, nothing called."""
    logged = _record().to_log()

    assert (logged["decision"], logged["step"], logged["status"]) == (
        "rejected",
        "frame",
        0,
    )
    assert logged["upstream_called"] is False


def test_every_record_has_its_own_message_and_request_ids() -> None:
    """Two exchanges never share an id, even if built in the same instant."""
    first, second = _record(), _record()

    assert first.message_id != second.message_id
    assert first.request_id != second.request_id
    assert first.message_id != first.request_id


def test_the_logged_record_holds_no_body() -> None:
    """Bodies are kept for the encrypted body log only; the record has digests."""
    logged = _finished().to_log()

    text = orjson.dumps(logged)
    assert b"999901234563" not in text
    assert b"Sample Student" not in text
    assert logged["forwarded_body_sha256"] == sha256_hex(REQUEST_BODY)
    assert not {"request_body", "response_body", "_mark"} & set(logged)


def test_the_repr_of_a_record_holds_no_body() -> None:
    """A record printed in a traceback or a debug line does not show a body."""
    shown = repr(_finished())

    assert "999901234563" not in shown
    assert "Sample Student" not in shown


@pytest.mark.parametrize(
    ("request_logged", "direction"), [(False, "exchange"), (True, "response")]
)
def test_the_final_record_says_whether_a_request_record_came_first(
    request_logged: bool, direction: str
) -> None:
    """An exchange logged in one record is ``exchange``; after a request record
    the same message id closes with ``response``."""
    current = _record()
    current.request_logged = request_logged

    assert current.to_log()["direction"] == direction


def test_the_request_record_carries_no_outcome() -> None:
    """Written before anything leaves the node, it cannot know how it ended."""
    logged = _finished().to_request_log()

    assert {
        key: logged[key]
        for key in (
            "direction",
            "decision",
            "status",
            "reason",
            "upstream_attempts",
            "upstream_status",
            "upstream_body_sha256",
            "response_body_sha256",
            "upstream_signature_kid",
            "response_signature_kid",
        )
    } == {
        "direction": "request",
        "decision": "forwarded",
        "status": 0,
        "reason": None,
        "upstream_attempts": 0,
        "upstream_status": None,
        "upstream_body_sha256": None,
        "response_body_sha256": None,
        "upstream_signature_kid": None,
        "response_signature_kid": None,
    }


def test_the_request_record_says_what_is_sent_on_whose_authority() -> None:
    """Client, rule, purpose, the forwarded digest and its signer are all there."""
    done = _finished()

    logged = done.to_request_log()

    assert (
        logged["message_id"],
        logged["client_id"],
        logged["rule_id"],
        logged["purpose"],
        logged["forwarded_body_sha256"],
        logged["request_signature_kid"],
    ) == (
        done.message_id,
        "WB/GOV/WCD/kanyashree",
        "kanyashree-applicants",
        "scholarship",
        sha256_hex(REQUEST_BODY),
        "node-ed-1",
    )


def test_writing_the_request_record_leaves_the_exchange_as_it_was() -> None:
    """The final record that follows still has the outcome."""
    done = _finished()

    done.to_request_log()

    assert (done.to_log()["status"], done.to_log()["direction"]) == (502, "response")


def test_the_log_line_leaves_out_who_and_where() -> None:
    """The structured line has no path, address, user or subject: those are
    personal, and kept in the message log alone."""
    done = _finished()
    done.user_id = "officer-17"
    done.client_ip = "10.20.0.9"
    done.subject_hash = "ab" * 32

    event = done.to_event()

    assert not PERSONAL & set(event)
    assert "10.20.0.9" not in str(event)
    assert "officer-17" not in str(event)


def test_the_log_line_says_how_the_exchange_ended() -> None:
    """Who asked for what, the decision, status and reason are on the line."""
    event = _finished().to_event()

    assert (
        event["client_id"],
        event["decision"],
        event["status"],
        event["reason"],
        event["upstream_attempts"],
    ) == ("WB/GOV/WCD/kanyashree", "forwarded", 502, "upstream_signature_invalid", 2)


def test_sha256_hex_is_the_lower_case_hex_digest() -> None:
    """The digest of no bytes is the well-known SHA-256 of the empty string."""
    assert sha256_hex(b"") == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
