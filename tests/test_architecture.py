"""The layers stay apart: runtime and front end never load each other.

Imports run in a fresh interpreter, so that what one test imported cannot hide what
another would load.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import pkgutil
import subprocess
import sys
from types import ModuleType

import pytest

import reflow_lang.runtime
from reflow_lang.frontend import ast, ir

RUNTIME_MODULES = sorted(
    ["reflow_lang.runtime"]
    + [
        m.name
        for m in pkgutil.walk_packages(
            reflow_lang.runtime.__path__, "reflow_lang.runtime."
        )
    ]
)
FRONTEND_MODULES = [
    "reflow_lang.frontend.api",
    "reflow_lang.frontend.lower",
    "reflow_lang.frontend.compiler",
    "reflow_lang.frontend.codes",
]


def _loaded_after_import(module: str) -> list[str]:
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    loaded: list[str] = json.loads(result.stdout)
    return loaded


@pytest.mark.parametrize("module", RUNTIME_MODULES)
def test_runtime_loads_no_front_end(module: str) -> None:
    loaded = _loaded_after_import(module)
    forbidden = [
        name
        for name in loaded
        if name == "lark" or name.startswith(("lark.", "reflow_lang.frontend"))
    ]
    assert forbidden == []


@pytest.mark.parametrize("module", FRONTEND_MODULES)
def test_front_end_loads_no_runtime(module: str) -> None:
    loaded = _loaded_after_import(module)
    assert [name for name in loaded if name.startswith("reflow_lang.runtime")] == []


@pytest.mark.parametrize("module", [ast, ir], ids=["ast", "ir"])
def test_nodes_are_frozen_slotted_dataclasses_with_a_span(module: ModuleType) -> None:
    classes = [
        value
        for value in vars(module).values()
        if inspect.isclass(value) and value.__module__ == module.__name__
    ]
    assert classes
    for cls in classes:
        assert dataclasses.is_dataclass(cls), cls
        assert cls.__dataclass_params__.frozen, cls  # type: ignore[attr-defined]
        assert "__slots__" in vars(cls), cls
        assert "span" in {f.name for f in dataclasses.fields(cls)}, cls
