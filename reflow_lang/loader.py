"""Finding the Python objects a flow names: modules by name or by file, attributes by path.

Shared by the front end (which inspects signatures) and the runtime (which calls
them), so that both resolve a `FunctionRef` the same way.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

from reflow_lang.plan import FunctionRef

STDLIB_PACKAGE = "reflow_lang.stdlib"

# Modules loaded from a file are registered under this prefix, so that a user module
# named like an installed one (`string.py` beside a flow) never replaces it.
USER_PREFIX = "_reflow_user."

_loading = threading.RLock()


def load_module(module: str, path: str | None = None) -> ModuleType:
    """Imports `module`, from `path` when given (a user module beside a flow file).

    A module loaded from a file is registered in `sys.modules` under `USER_PREFIX` and
    its name, so that it runs once per process however many stages use it, and never
    shadows an installed module of the same name.

    Raises:
        ImportError: the module cannot be found or fails to import (the cause chained).
    """
    if path is None:
        return importlib.import_module(module)

    key = USER_PREFIX + module
    # The module is in `sys.modules` while it runs; without the lock another thread
    # (a function resolved from a worker thread) could take it half-made. Re-entrant:
    # a user module may load another one as it runs.
    with _loading:
        loaded = sys.modules.get(key)
        if loaded is not None and _same_file(getattr(loaded, "__file__", None), path):
            return loaded
        return _load_file(module, key, path)


def _load_file(module: str, key: str, path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(key, path)
    if spec is None or spec.loader is None:
        msg = f"cannot load module `{module}` from {path}"
        raise ImportError(msg)
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[key] = loaded
    try:
        spec.loader.exec_module(loaded)
    except BaseException:
        del sys.modules[key]
        raise
    return loaded


def resolve_attribute(module: ModuleType, name: str) -> Any:
    """Follows a dotted attribute path (`str.lower`) from a module.

    Raises:
        AttributeError: some part of the path does not exist.
    """
    target: Any = module
    for part in name.split("."):
        target = getattr(target, part)
    return target


def resolve_function(ref: FunctionRef) -> Any:
    """The callable a `FunctionRef` names."""
    return resolve_attribute(load_module(ref.module, ref.path), ref.name)


def _same_file(a: str | None, b: str) -> bool:
    return a is not None and Path(a).resolve() == Path(b).resolve()
