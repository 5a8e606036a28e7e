"""Every diagnostic code of the front end, gathered from the families that report them.

Each family keeps its own `CODES` (code to one-line summary) next to the checks; this
module joins them into one registry, from which `docs/diagnostics.md` is generated.
"""

from __future__ import annotations

from reflow_lang.frontend import syntax_errors
from reflow_lang.frontend.checks import (
    delivery,
    functions,
    libraries,
    names,
    options,
    order,
    shape,
    splits,
    uses,
)

# The families in the order of their codes, with a title for each.
FAMILIES: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("E0xx", "reading and syntax", syntax_errors.CODES),
    ("E1xx", "names", names.CODES),
    ("E2xx", "`use` resolution", {**uses.CODES, **libraries.CODES}),
    ("E3xx", "functions", functions.CODES),
    ("E4xx", "options", options.CODES),
    ("E5xx", "graph shape", shape.CODES),
    ("E6xx", "splits and rejoins", splits.CODES),
    ("E7xx", "order", order.CODES),
    ("E8xx", "delivery and parameters", delivery.CODES),
)


def all_codes() -> dict[str, str]:
    """Every code with its summary, sorted by code."""
    merged: dict[str, str] = {}
    for _, _, codes in FAMILIES:
        merged.update(codes)
    return dict(sorted(merged.items()))


def diagnostics_markdown() -> str:
    """The text of `docs/diagnostics.md`: one table per family."""
    lines = [
        "# Diagnostic codes",
        "",
        "Every problem `reflowc check` reports has a stable code. Codes starting with",
        "`E` are errors; codes starting with `W` are warnings, which fail a check only",
        "with `--strict`. This file is generated from the registry in",
        "`reflow_lang/frontend/codes.py`; a test keeps them in step.",
    ]
    for family, title, codes in FAMILIES:
        lines += [
            "",
            f"## {family}: {title}",
            "",
            "| code | meaning |",
            "| --- | --- |",
        ]
        lines += [f"| {code} | {summary} |" for code, summary in sorted(codes.items())]
    return "\n".join(lines) + "\n"
