"""Fixtures shared by the runtime and order tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reflow_lang.testing import collecting_in


@pytest.fixture(params=["local", "processes"])
def mode(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where a job runs: in this process, or as processes around a queue server, as
    `reflowc run --processes` runs it.

    In process mode the collectors write to files in `tmp_path`, which is also the
    `shared_folder` where a test's functions leave what the test reads back.
    """
    if request.param == "local":
        yield "local"
        return
    with collecting_in(str(tmp_path)):
        yield "processes"
