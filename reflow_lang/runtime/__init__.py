"""The local runtime: a compiled `Plan` run in one process as asyncio workers.

It reads only `reflow_lang.plan` (never the parser, the AST or the IR). `Job` runs a
plan inside a running event loop; `run` runs one in a new loop and handles Ctrl-C
(first: drain and stop; second: stop now).
"""

from __future__ import annotations

from reflow_lang.runtime.job import Job
from reflow_lang.runtime.runner import run
from reflow_lang.runtime.statistics import JobResult, JobStatistics, StageStatistics

__all__ = ["Job", "JobResult", "JobStatistics", "StageStatistics", "run"]
