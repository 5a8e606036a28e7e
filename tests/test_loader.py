"""Tests of `reflow_lang.loader`: user modules by file, attributes by dotted path."""

from __future__ import annotations

import string
import threading
from pathlib import Path

import pytest

from reflow_lang.loader import load_module, resolve_attribute, resolve_function
from reflow_lang.plan import FunctionRef


def test_load_module_from_file_does_not_shadow_an_installed_module(
    tmp_path: Path,
) -> None:
    path = tmp_path / "string.py"
    path.write_text("def shout(s):\n    return s.upper()\n")

    user = load_module("string", str(path))

    assert user.shout("a") == "A"
    assert string.ascii_lowercase == "abcdefghijklmnopqrstuvwxyz"
    import string as again

    assert again is string


def test_load_module_from_file_runs_once(tmp_path: Path) -> None:
    path = tmp_path / "counted.py"
    path.write_text("import itertools\nTICKS = itertools.count()\n")

    first = load_module("counted", str(path))
    second = load_module("counted", str(path))

    assert first is second


def test_load_module_from_threads_gives_each_the_whole_module(tmp_path: Path) -> None:
    # The module yields its thread half-way through running (the sleep widens the
    # window, it waits for nothing): no thread may see it without `DONE`.
    path = tmp_path / "slowly.py"
    path.write_text("import time\ntime.sleep(0.05)\nDONE = True\n")
    start = threading.Barrier(6)
    seen: list[bool] = []

    def load() -> None:
        start.wait()
        seen.append(getattr(load_module("slowly", str(path)), "DONE", False))

    threads = [threading.Thread(target=load) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert seen == [True] * 6


def test_load_module_that_fails_leaves_nothing_behind(tmp_path: Path) -> None:
    path = tmp_path / "broken.py"
    path.write_text("raise ValueError('no')\n")

    with pytest.raises(ValueError, match="no"):
        load_module("broken", str(path))
    path.write_text("OK = 1\n")

    assert load_module("broken", str(path)).OK == 1


def test_resolve_function_follows_dotted_names() -> None:
    assert resolve_function(FunctionRef("builtins", "str.lower")) is str.lower
    assert resolve_attribute(string, "Template.delimiter") == "$"
