"""The transport benchmark's contenders move every batch (the numbers are by hand:
`bench/README.md`)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parent.parent.parent / "bench" / "transport.py"


@pytest.fixture(scope="module")
def transport() -> Iterator[ModuleType]:
    # Loaded by path: `transport` is also the name of this test package.
    spec = importlib.util.spec_from_file_location("bench_transport", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_transport"] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules["bench_transport"]


def test_raw_and_transport_contenders_move_every_batch(transport: ModuleType) -> None:
    raw = transport.run_raw(20)
    rate, per_batch = transport.run_transport(20)  # asserts every event arrived

    assert raw > 0 and rate > 0
    assert sorted(per_batch) == ["consumer", "producer", "server"]
