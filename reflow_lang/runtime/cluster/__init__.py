"""Process mode: a job as OS processes, a queue server and one worker per unit.

`Supervisor` runs a plan on this host (`reflowc run --processes`); `roles` holds
what each process runs (`python -m reflow_lang.runtime.cluster queue-server|worker`,
and `reflowc serve` / `reflowc worker` for several hosts). See docs/processes.md.
"""

from __future__ import annotations

from reflow_lang.runtime.cluster.supervisor import ProcessFailure, Supervisor

__all__ = ["ProcessFailure", "Supervisor"]
