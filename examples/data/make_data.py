"""Writes the generated data files of the examples (seeded: the same bytes every run).

The texts in this folder are real (see README.md); the JSON-lines files are made here:
weather-station readings, a shop's customers and orders, and a payment processor's
export with the faults such exports have. Run from the repository root:

    python examples/data/make_data.py
"""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent

START = datetime(2024, 3, 18, 0, 0, tzinfo=UTC)

FIRST_NAMES = [
    "Ada", "Bruno", "Chiara", "Dries", "Elin", "Farid", "Greta", "Hugo", "Ines",
    "Jonas", "Katja", "Luc", "Marta", "Nils", "Olga", "Pablo", "Quentin", "Rosa",
    "Sven", "Tereza", "Ugo", "Vera", "Wim", "Yara", "Zeno",
]  # fmt: skip
LAST_NAMES = [
    "Moreau", "Jansen", "Rossi", "Schmidt", "Lindqvist", "Garcia", "Novak", "Bakker",
    "Dubois", "Weber", "Ferrari", "Nilsson", "Martin", "Keller", "Costa",
]  # fmt: skip
COUNTRIES = ["DE", "FR", "NL", "IT", "ES", "SE"]
COUNTRY_WEIGHTS = [30, 20, 15, 15, 12, 8]  # a shop based in Germany


def main() -> None:
    _write("readings_north.jsonl", _readings(_rng("north"), ["HBR-N1", "HBR-N2"], 48.0))
    _write("readings_south.jsonl", _readings(_rng("south"), ["HBR-S1", "HBR-S2"], 53.0))
    customers = _customers(_rng("customers"))
    _write("customers.jsonl", customers)
    _write("orders.jsonl", _orders(_rng("orders"), [c["id"] for c in customers]))
    payments = "".join(_payments(_rng("payments")))
    (HERE / "payments.jsonl").write_text(payments, encoding="utf-8")


def _rng(name: str) -> random.Random:
    # One generator per file, so that changing one file leaves the others as they are.
    return random.Random(f"reflow-examples-{name}")


def _write(name: str, rows: list[dict[str, Any]]) -> None:
    text = "".join(json.dumps(row) + "\n" for row in rows)
    (HERE / name).write_text(text, encoding="utf-8")


def _readings(
    rng: random.Random, stations: list[str], mean_f: float
) -> list[dict[str, Any]]:
    # Every 5 minutes for 6 hours, a daily swing of temperature plus sensor noise;
    # now and then a faulty sensor reports 999.9, as some real ones do.
    rows = []
    for step in range(72):
        time = START + timedelta(hours=6, minutes=5 * step)
        swing = 9.0 * math.sin((time.hour + time.minute / 60 - 9) / 24 * 2 * math.pi)
        for station in stations:
            temp = round(mean_f + swing + rng.gauss(0, 0.8), 1)
            if rng.random() < 0.02:
                temp = 999.9
            humidity = max(30, min(100, round(80 - swing * 2 + rng.gauss(0, 3))))
            stamp = time.isoformat().replace("+00:00", "Z")
            rows.append(
                {
                    "station": station,
                    "time": stamp,
                    "temp_f": temp,
                    "humidity": humidity,
                }
            )
    return rows


def _customers(rng: random.Random) -> list[dict[str, Any]]:
    rows = []
    for number in range(1, 26):
        first, last = FIRST_NAMES[number - 1], rng.choice(LAST_NAMES)
        email = f"{first.lower()}.{last.lower()}@example.com"
        country = rng.choices(COUNTRIES, COUNTRY_WEIGHTS)[0]
        rows.append(
            {"id": f"C{number:03d}", "name": f"{first} {last}", "email": email,
             "country": country}
        )  # fmt: skip
    return rows


def _orders(rng: random.Random, customer_ids: list[str]) -> list[dict[str, Any]]:
    # A few orders belong to accounts that were deleted since: no customer matches.
    rows = []
    time = START
    for number in range(10001, 10201):
        time += timedelta(minutes=rng.randint(3, 90))
        customer = (
            rng.choice(customer_ids)
            if rng.random() > 0.03
            else "C9" + str(rng.randint(10, 99))
        )
        items = rng.randint(1, 5)
        amount = round(
            sum(rng.choice([4.9, 9.9, 12.5, 19.9, 24.0, 49.0]) for _ in range(items)), 2
        )
        rows.append(
            {"order_id": f"O-{number}", "customer_id": customer,
             "placed": time.isoformat().replace("+00:00", "Z"),
             "items": items, "amount": amount}
        )  # fmt: skip
    return rows


def _payments(rng: random.Random) -> list[str]:
    # Mostly settled card payments; some failed or refunded; a few lines cut short
    # by the exporter, negative amounts and a currency nobody quotes.
    lines = []
    time = START
    for number in range(1, 131):
        time += timedelta(seconds=rng.randint(20, 600))
        row = {
            "id": f"pay_{number:05d}",
            "time": time.isoformat().replace("+00:00", "Z"),
            "amount": round(rng.uniform(3, 250), 2),
            "currency": rng.choice(["EUR", "EUR", "EUR", "USD", "GBP", "SEK", "CHF"]),
            "status": rng.choices(["settled", "failed", "refunded"], [85, 10, 5])[0],
            "card": rng.choice(["visa", "mastercard", "amex"]),
        }
        fault = rng.random()
        if fault < 0.03:
            row["amount"] = -row["amount"]
        elif fault < 0.05:
            row["currency"] = "XTS"
        line = json.dumps(row)
        if 0.05 <= fault < 0.08:
            line = line[: rng.randint(10, len(line) - 5)]
        lines.append(line + "\n")
    return lines


if __name__ == "__main__":
    main()
