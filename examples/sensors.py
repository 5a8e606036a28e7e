"""Weather-station helpers for `station_means.flow`.

A reading is a JSON object: `{"station": "HBR-N1", "time": "2024-03-18T06:00:00Z",
"temp_f": 40.5, "humidity": 94}`. Windows are fixed, aligned on the hour.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

Reading = dict[str, Any]
Tally = list[float]
"""A window's running numbers: `[count, sum, lowest, highest]` of temperatures."""


def station(reading: Reading) -> str:
    """The station a reading comes from (a key)."""
    return str(reading["station"])


def to_celsius(reading: Reading) -> Reading:
    """The reading with `temp_c` (one decimal) in place of `temp_f`.

    Example:
        >>> to_celsius({"station": "X", "temp_f": 50.0})
        {'station': 'X', 'temp_c': 10.0}
    """
    celsius = {key: value for key, value in reading.items() if key != "temp_f"}
    celsius["temp_c"] = round((reading["temp_f"] - 32.0) * 5.0 / 9.0, 1)
    return celsius


def plausible(reading: Reading, max_celsius: float) -> bool:
    """Whether the temperature is believable: faulty sensors report 999.9 °F.

    Example:
        >>> plausible({"temp_c": 537.7}, 60.0), plausible({"temp_c": 8.1}, 60.0)
        (False, True)
    """
    return -60.0 <= float(reading["temp_c"]) <= max_celsius


def windowed(reading: Reading, seconds: float) -> Reading:
    """The reading with `window`: the start of its window of `seconds`, ISO 8601.

    Example:
        >>> windowed({"time": "2024-03-18T06:20:00Z"}, 900.0)["window"]
        '2024-03-18T06:15:00Z'
    """
    when = datetime.fromisoformat(reading["time"])
    epoch = when.timestamp()
    start = datetime.fromtimestamp(epoch - epoch % seconds, when.tzinfo)
    return {**reading, "window": start.isoformat().replace("+00:00", "Z")}


def station_window(reading: Reading) -> tuple[str, str]:
    """The station and the window of a reading (the grouping key)."""
    return reading["station"], reading["window"]


def add(tally: Tally, reading: Reading) -> Tally:
    """Adds a reading's temperature to a window's tally (a `reduce` function).

    Example:
        >>> add(add([0, 0.0, 999.0, -999.0], {"temp_c": 4.0}), {"temp_c": 6.0})
        [2, 10.0, 4.0, 6.0]
    """
    count, total, low, high = tally
    temp = reading["temp_c"]
    return [count + 1, total + temp, min(low, temp), max(high, temp)]


def summary(pair: tuple[tuple[str, str], Tally]) -> dict[str, Any]:
    """A window's result, from the `(key, tally)` pair that `reduce` emits.

    Example:
        >>> summary((("HBR-N1", "2024-03-18T06:00:00Z"), [2, 10.0, 4.0, 6.0]))["mean_c"]
        5.0
    """
    (name, window), (count, total, low, high) = pair
    return {
        "station": name,
        "window": window,
        "readings": int(count),
        "mean_c": round(total / count, 2),
        "min_c": low,
        "max_c": high,
    }
