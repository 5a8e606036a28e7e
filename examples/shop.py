"""Shop helpers for `order_totals.flow`: invoice lines from joined orders and customers.

An order: `{"order_id": "O-10001", "customer_id": "C008", "items": 3, "amount":
92.9, ...}`; a customer: `{"id": "C008", "name": ..., "country": "DE", ...}`.
Amounts are net, in euros.
"""

from __future__ import annotations

from typing import Any

# Standard VAT rates of the shop's markets, in percent (2024).
VAT_RATES = {"DE": 19, "FR": 20, "NL": 21, "IT": 22, "ES": 21, "SE": 25}

UNKNOWN = "unknown"

Record = dict[str, Any]


def invoice_line(pair: tuple[Record, Record | None], with_vat: bool) -> Record:
    """An invoice line from an `(order, customer)` pair of a left join.

    An order whose customer is gone (`None`) is kept, with country `unknown` and no
    VAT.

    Example:
        >>> order = {"order_id": "O-1", "customer_id": "C1", "amount": 100.0}
        >>> invoice_line((order, {"id": "C1", "country": "NL"}), True)["total"]
        121.0
        >>> invoice_line((order, None), True)["country"]
        'unknown'
    """
    order, customer = pair
    country = customer["country"] if customer is not None else UNKNOWN
    rate = VAT_RATES.get(country, 0) if with_vat else 0
    total = round(order["amount"] * (100 + rate) / 100, 2)
    return {"order_id": order["order_id"], "country": country, "total": total}


def country(line: Record) -> str:
    """The country of an invoice line (a key)."""
    return str(line["country"])


def add_total(revenue: float, line: Record) -> float:
    """Adds an invoice line's total to a country's revenue (a `reduce` function)."""
    return revenue + float(line["total"])


def rounded(pair: tuple[str, float]) -> tuple[str, float]:
    """A `(country, revenue)` pair with the revenue rounded to cents."""
    name, revenue = pair
    return name, round(revenue, 2)
