"""Payment helpers for `payments.flow`: parse, check and convert payment records.

The input is a payment processor's export, one JSON object a line, e.g.
`{"id": "pay_00001", "amount": 105.18, "currency": "CHF", "status": "settled", ...}`.
Real exports have faults, and so does this one: lines cut short, negative amounts, a
currency code nobody quotes.

`convert` asks a rate service. The service here is simulated, and like a real one
behind a cold cache, its first answer for each currency fails with a timeout; the flow
retries (`on_error = retry(3)`).
"""

from __future__ import annotations

import json
import threading
from typing import Any

Payment = dict[str, Any]

# Reference rates: units of each currency per euro (ECB, 18 March 2024).
RATES_PER_EUR = {
    "EUR": 1.0,
    "USD": 1.0887,
    "GBP": 0.8556,
    "SEK": 11.3385,
    "CHF": 0.9698,
}

_REQUIRED = ("id", "amount", "currency", "status")


class RateServiceTimeout(ConnectionError):
    """The simulated rate service did not answer in time."""


class _RateService:
    """Answers rates; the first request for each currency times out (a cold cache)."""

    def __init__(self) -> None:
        self._warm: set[str] = set()
        self._lock = threading.Lock()

    def rate(self, source: str, target: str) -> float:
        with self._lock:
            cold = source not in self._warm
            self._warm.add(source)
        if cold:
            msg = f"rate service timed out on `{source}`"
            raise RateServiceTimeout(msg)
        return RATES_PER_EUR[target] / RATES_PER_EUR[source]


_service = _RateService()


def parse(line: str) -> Payment:
    """Decodes one line of the export; raises `ValueError` on a damaged one.

    Example:
        >>> line = '{"id": "p1", "amount": 5, "currency": "EUR", "status": "settled"}'
        >>> parse(line)["amount"]
        5
        >>> parse('{"id": "p2", "amount": 5}')
        Traceback (most recent call last):
        ...
        ValueError: payment lacks currency, status
    """
    payment = json.loads(line)
    missing = [name for name in _REQUIRED if name not in payment]
    if missing:
        msg = f"payment lacks {', '.join(missing)}"
        raise ValueError(msg)
    return dict(payment)


def is_settled(payment: Payment) -> bool:
    """Whether the money moved (failed and refunded payments are left out)."""
    return bool(payment["status"] == "settled")


def validate(payment: Payment) -> Payment:
    """Returns the payment if its amount and currency make sense; raises otherwise.

    Example:
        >>> validate({"id": "p", "amount": -5.0, "currency": "EUR"})
        Traceback (most recent call last):
        ...
        ValueError: payment `p` has a negative amount: -5.0
    """
    if payment["amount"] < 0:
        msg = f"payment `{payment['id']}` has a negative amount: {payment['amount']}"
        raise ValueError(msg)
    if payment["currency"] not in RATES_PER_EUR:
        currency = payment["currency"]
        msg = f"payment `{payment['id']}` is in an unknown currency: {currency}"
        raise ValueError(msg)
    return payment


def convert(payment: Payment, currency: str) -> Payment:
    """The payment with `settled` (the amount in `currency`, to the cent) added.

    Raises `RateServiceTimeout` when the rate service does not answer.
    """
    rate = _service.rate(payment["currency"], currency)
    return {**payment, "settled": round(payment["amount"] * rate, 2), "in": currency}
