"""Which tasks of a plan share a worker: chains of stateless stages, fused.

Every queue hop costs per batch, so a chain of stateless stages (map, filter,
flat_map, key_by) runs in one worker when each link's output queue has the next link
as its only consumer and the links have the same workers and order (the way Flink
chains operators). Fusion is the runtime's choice: the plan does not change, and
statistics stay per stage.
"""

from __future__ import annotations

from reflow_lang.plan import Plan, Queue, Task

STATELESS = frozenset({"map", "filter", "flat_map", "key_by"})


def fuse(plan: Plan) -> list[tuple[Task, ...]]:
    """The plan's tasks grouped into workers, in the plan's order."""
    queues = {queue.name: queue for queue in plan.queues}
    tasks = {task.name: task for task in plan.tasks}
    fused: set[str] = set()
    units: list[tuple[Task, ...]] = []
    for task in plan.tasks:
        if task.name in fused:
            continue
        unit = [task]
        while unit[-1].kind in STATELESS:
            follower = _follower(unit[-1], queues, tasks)
            if follower is None or not _fits(task, follower):
                break
            unit.append(follower)
            fused.add(follower.name)
        units.append(tuple(unit))
    return units


def _follower(
    task: Task, queues: dict[str, Queue], tasks: dict[str, Task]
) -> Task | None:
    # The only reader of the task's output queue, if it reads nothing else.
    if task.output is None:
        return None
    queue = queues[task.output]
    if len(queue.consumers) != 1:
        return None
    follower = tasks[queue.consumers[0]]
    if follower.inputs != (task.output,):
        return None
    return follower


def _fits(first: Task, follower: Task) -> bool:
    return (
        follower.kind in STATELESS
        and follower.workers == first.workers
        and follower.order == first.order
    )
