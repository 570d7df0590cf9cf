"""Derived facts the registry answers without releasing the data behind them.

An eligibility window (a birth-date range and a class range, as a scheme year sets
them) is answered with two booleans, so a scheme can be told whether an applicant
falls inside without reading her date of birth. A payment-status report checks a
batch of scholarship payments against the bank accounts schools recorded: a payment
is ``payable`` only if the student is enrolled and both the account number and the
IFSC match; the account number never comes back. Every check raises
:class:`~registry_stub.records.Rejected` for a malformed body.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any, Final

from registry_stub import records
from registry_stub.records import Doc, Rejected

MAX_PAYMENTS: Final = 500
#: The largest single scholarship payment accepted, in rupees.
MAX_AMOUNT: Final = Decimal("10000000")
_ACCOUNT = re.compile(r"[0-9]{9,18}", re.ASCII)
_IFSC = re.compile(r"[A-Z]{4}0[A-Z0-9]{6}", re.ASCII)
_WINDOW_KEYS: Final = frozenset({"born_from", "born_to", "class_from", "class_to"})


def window(body: Mapping[str, Any]) -> tuple[date, date, int, int] | None:
    """The optional ``window`` of a verification body, or None if absent.

    Raises Rejected 422 ``invalid_field`` (field ``window``) for a window that is
    not an object of the four keys, has an empty range, or a class outside 0-12.
    """
    if "window" not in body:
        return None
    raw = records.mapping(body, "window")
    if set(raw) != _WINDOW_KEYS:
        raise Rejected(422, "invalid_field", field="window")
    try:
        born_from = records.iso_date(raw, "born_from")
        born_to = records.iso_date(raw, "born_to")
        class_from = records.integer(raw, "class_from", 0, 12)
        class_to = records.integer(raw, "class_to", 0, 12)
    except Rejected as exc:
        raise Rejected(422, "invalid_field", field="window") from exc
    if born_from > born_to or class_from > class_to:
        raise Rejected(422, "invalid_field", field="window")
    return born_from, born_to, class_from, class_to


def window_facts(
    doc: Doc | None, bounds: tuple[date, date, int, int]
) -> dict[str, bool | None]:
    """Whether an enrolled student's birth date and class fall inside the window.

    Both are None for an unknown student or one no longer enrolled.
    """
    if doc is None or doc["enrolment_status"] != "enrolled":
        return {"date_of_birth_in_window": None, "class_in_window": None}
    born_from, born_to, class_from, class_to = bounds
    born = date.fromisoformat(doc["date_of_birth"])
    return {
        "date_of_birth_in_window": born_from <= born <= born_to,
        "class_in_window": class_from <= doc["class"] <= class_to,
    }


def payments(body: Mapping[str, Any]) -> list[tuple[str, str, str, Decimal]]:
    """The payments of a report body: (student id, account, IFSC, amount).

    Raises Rejected 422 ``invalid_field`` naming ``payments`` (not a list of 1 to
    500 objects) or the offending key of an item; amounts are positive rupees with
    at most two decimals.
    """
    items = body.get("payments")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_PAYMENTS:
        raise Rejected(422, "invalid_field", field="payments")
    return [_payment(item) for item in items]


def _payment(item: Any) -> tuple[str, str, str, Decimal]:
    if not isinstance(item, dict):
        raise Rejected(422, "invalid_field", field="payments")
    return (
        records.text(item, "student_id"),
        records.text(item, "account_number", _ACCOUNT),
        records.text(item, "ifsc", _IFSC),
        _amount(item.get("amount")),
    )


def _amount(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Rejected(422, "invalid_field", field="amount")
    amount = Decimal(str(value))
    if not 0 < amount <= MAX_AMOUNT or amount != amount.quantize(Decimal("0.01")):
        raise Rejected(422, "invalid_field", field="amount")
    return amount


def payment_report(
    wanted: list[tuple[str, str, str, Decimal]],
    find: Callable[[str], Doc | None],
) -> Doc:
    """The status of each payment and the totals; ``find`` looks a student up."""
    rows = [_status(find(sid), sid, acc, ifsc, amt) for sid, acc, ifsc, amt in wanted]
    payable = [Decimal(str(r["amount"])) for r in rows if r["status"] == "payable"]
    return {
        "count": len(rows),
        "payable_count": len(payable),
        "total_payable": float(sum(payable, Decimal(0))),
        "payments": rows,
    }


def _status(
    doc: Doc | None, student_id: str, account: str, ifsc: str, amount: Decimal
) -> Doc:
    recorded = (doc or {}).get("bank_account") or {}
    enrolled = doc is not None and doc["enrolment_status"] == "enrolled"
    # Compared in constant time: the answer must not leak how much matched.
    account_ok = bool(recorded) and hmac.compare_digest(
        account.encode(), str(recorded.get("account_number", "")).encode()
    )
    ifsc_ok = bool(recorded) and hmac.compare_digest(
        ifsc.encode(), str(recorded.get("ifsc", "")).encode()
    )
    return {
        "student_id": student_id,
        "enrolled": enrolled,
        "account_matches": account_ok,
        "ifsc_matches": ifsc_ok,
        "amount": float(amount),
        "status": "payable" if enrolled and account_ok and ifsc_ok else "held",
    }
