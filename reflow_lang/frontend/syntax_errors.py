"""The syntax family of diagnostic codes (`E0xx`) and the table of bad examples.

`CODES` maps every code the source reader and the parser report to a one-line summary.
`EXAMPLES` classifies frequent LALR failures, in the spirit of lark's `match_examples`:
each entry lists short bad statements; the parser parses them once, records where each
one fails (the token before the failure, the token found, the set of tokens that would
have fitted), and reports any later failure with the same signature with the entry's
code, message and hint. Failures that match no entry get `E030`, a message that lists
what was expected in the language's words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CODES: dict[str, str] = {
    # Reading the file.
    "E001": "the file does not exist",
    "E002": "the path is not a regular file",
    "E003": "the file cannot be read",
    "E004": "the file is not valid UTF-8",
    "E005": "the file contains a NUL byte",
    "E006": "the file has no statements",
    "E007": "the file is too large to be a flow",
    # Tokens and literals.
    "E020": "a character that cannot start any token",
    "E021": "a string that is not closed on its line",
    "E022": "an unknown escape sequence in a string",
    "E023": "a malformed number or duration",
    "E024": "brackets nested too deeply",
    "E025": "too many syntax errors; the rest of the file was not parsed",
    "E026": "an unknown parameter type",
    "E027": "the `flow` header is not the first statement",
    "E028": "a second `flow` header",
    "E029": "a `def` named after a stage keyword",
    # Parse errors.
    "E030": "an unexpected token",
    "E031": "a `|` not followed by a stage",
    "E032": "a stage keyword or `source` not followed by a function",
    "E033": "`count` followed by a function",
    "E034": "a keyword argument in a call",
    "E035": "a stream name at the start of a statement not followed by `=` or `|`",
    "E036": "an option without `=`",
    "E037": "a flow parameter without a type",
    "E038": "a bracket that is never closed",
    "E039": "`flow` not followed by the flow's name",
    "E040": "`use` not followed by a module name",
    "E041": "`merge` not followed by `(`",
    "E042": "a `join` input not followed by `by` and a key",
    "E043": "`def NAME` not followed by `(` and the fragment's input",
    "E044": "a fragment stage (a word that is no stage keyword) followed by more",
}

# How an entry's examples are matched: on the token before the failure (`after`), the
# token found (`found`) or both; the set of tokens that would have fitted is always
# part of the signature.
MatchOn = Literal["after", "found", "both"]


@dataclass(frozen=True, slots=True)
class BadExample:
    """A class of syntax errors, with the bad statements that define it.

    Attributes:
        code: the diagnostic code, a key of `CODES`.
        message: the message template; `{found}` is the unexpected token described
            in words, `{after}` the text of the token before it, `{expected}` the
            list of what would have fitted.
        hint: what to do about it.
        match_on: which tokens around the failure are part of the signature.
        examples: statements that fail in this way, one per line of a file.
    """

    code: str
    message: str
    hint: str | None
    match_on: MatchOn
    examples: tuple[str, ...]


_STAGE_HINT = (
    "a stage is `map F`, `flat_map F`, `filter F`, `key_by F`, `rejoin F`, "
    "`reduce F`, `count`, `sink F` or the name of a `def`"
)

EXAMPLES: tuple[BadExample, ...] = (
    BadExample(
        "E031",
        "expected a stage after `|`; found {found}",
        _STAGE_HINT,
        "after",
        ("a |", "a | 5", 'a | "x"', "a | |", "a | (", "a | [", "a | ]", "a | ="),
    ),
    BadExample(
        "E032",
        "expected a function after `{after}`; found {found}",
        "name a function, with or without arguments: `map str.lower`, "
        "`filter w.longer_than(3)`",
        "after",
        (
            "a | map",
            "a | flat_map",
            "a | filter",
            "a | key_by",
            "a | rejoin",
            "a | reduce",
            "a | sink",
            "a | map 5",
            "a | map | sink f",
            "a | sink [batch = 5]",
            'a = source "x"',
        ),
    ),
    BadExample(
        "E033",
        "`count` takes no function; found {found}",
        "to count per key, write `count [by = K]`; to fold with a function, "
        "use `reduce F`",
        "after",
        ("a | count f", "a | count(x)", "a | count 5"),
    ),
    BadExample(
        "E034",
        "keyword arguments are not supported; found `=` after an argument",
        "pass arguments by position: `f(1, 2)`",
        "found",
        ("a = source f(x = 1)", "a = source f(1, y = 2)", "a | map f(x.y = 1)"),
    ),
    BadExample(
        "E035",
        "expected `=` or `|` after the stream name `{after}`; found {found}",
        "bind a stream with `NAME = CHAIN`, or go on with `| STAGE`",
        "after",
        ("a b", "a 5", "a (x)", 'a "x"', "a [x = 1]", "a :"),
    ),
    BadExample(
        "E036",
        "expected `=` after the option name `{after}`; found {found}",
        "options are written `[key = value, ...]`",
        "after",
        ("a | map f [workers 2]", "a | map f [workers]", "a | map f [workers: 2]"),
    ),
    BadExample(
        "E037",
        "expected `:` and a type after the parameter `{after}`; found {found}",
        "parameters are typed: `path: str`, `n: int = 4`; the types are `str`, "
        "`int`, `float`, `bool`, `duration` and `path`",
        "after",
        ("flow f(a)", "flow f(a = 1)", "flow f(a, b: int)", "flow f(a str)"),
    ),
    BadExample(
        "E039",
        "expected the flow's name after `flow`; found {found}",
        "a flow starts with `flow NAME(PARAMS)`, e.g. `flow wordcount(path: str)`",
        "after",
        ("flow (a: int)", "flow 5", 'flow "x"'),
    ),
    BadExample(
        "E040",
        "expected a module name after `{after}`; found {found}",
        "write `use text` for a standard-library module or `use python mymodule` "
        "for a Python module",
        "after",
        ("use 5", 'use "text"', "use python 5", "use (text)"),
    ),
    BadExample(
        "E041",
        "expected `(` after `merge`; found {found}",
        "list the streams to merge in brackets: `merge(a, b)`",
        "after",
        ("x = merge a, b", "x = merge [a, b]", "x = merge 5"),
    ),
    BadExample(
        "E042",
        "expected `by` and a key after the join input `{after}`; found {found}",
        "write `join A by KA, B by KB`, with a key function, a quoted field name "
        "or `self` for each input",
        "after",
        ("x = join a, b", "x = join a", "x = join a b", "x = join a by k, b"),
    ),
    BadExample(
        "E043",
        "expected `(` and the fragment's input after `def {after}`; found {found}",
        "a fragment is written `def NAME(IN) = IN | STAGE ...`",
        "after",
        ("def f = s | map g", "def f", "def f s"),
    ),
    BadExample(
        # The hint is chosen by the parser: the stage keyword the word is closest to,
        # if any (`mapp str.lower`), else this one.
        "E044",
        "`{after}` is not a stage keyword, so it names a fragment, which takes no "
        "function or arguments; found {found}",
        _STAGE_HINT,
        "after",
        ("a | words(3)", "a | frag g", "a | frag 5", 'a | f "x"'),
    ),
)
