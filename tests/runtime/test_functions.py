"""Which functions run on the loop, and how keys are read."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reflow_lang.errors import PlanError
from reflow_lang.plan import FunctionRef, Key
from reflow_lang.runtime.functions import is_inline, key_reader, resolve

from .plans import fn

TEXT = "reflow_lang.stdlib.text"


@pytest.mark.parametrize(
    ("ref", "inline"),
    [
        (FunctionRef("builtins", "len"), True),
        (FunctionRef("builtins", "str.lower"), True),
        (FunctionRef("builtins", "print"), False),
        (FunctionRef("builtins", "input"), False),
        (FunctionRef(TEXT, "words"), True),
        (FunctionRef(TEXT, "lines", args=("-",)), False),
        (FunctionRef(TEXT, "write_tsv", args=("-",)), False),
        (fn("double"), False),
    ],
)
def test_is_inline_only_for_known_pure_functions(
    ref: FunctionRef, inline: bool
) -> None:
    assert is_inline(ref) is inline


def test_is_inline_file_source_only_for_regular_file(tmp_path: Path) -> None:
    regular = tmp_path / "lines.txt"
    regular.write_text("a\n")

    assert is_inline(FunctionRef(TEXT, "lines", args=(str(regular),)))
    assert not is_inline(FunctionRef(TEXT, "lines", args=(str(tmp_path),)))


def test_resolve_missing_module_names_stage() -> None:
    with pytest.raises(
        PlanError,
        match=re.escape(
            "stage `m` cannot load `nowhere.fn`: ModuleNotFoundError: "
            "No module named 'nowhere'"
        ),
    ):
        resolve(FunctionRef("nowhere", "fn", display="nowhere.fn"), "m")


def test_key_reader_field_of_mapping_and_attribute() -> None:
    read = key_reader(Key("field", field="user"), "k")

    assert read is not None
    assert read({"user": "ann"}) == "ann"
    assert read(type("Event", (), {"user": "bob"})()) == "bob"
    assert key_reader(Key("self"), "k") is None


def test_key_reader_refuses_async_function() -> None:
    message = (
        "stage `k` reads its key with `fns.async_double`, an async function; "
        "a key function must be a plain function"
    )
    with pytest.raises(PlanError, match=re.escape(message)):
        key_reader(Key("function", function=fn("async_double")), "k")
