"""What a queue remembers: recent ids, stamps, merge tags, the mode per queue.

How a queue drops replays with them is tested with the queue (`tests/runtime/
test_queue.py`). They run no job: the queues and inputs are this process's objects,
so they stay local (the `mode` fixture is for tests that run jobs).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from reflow_lang.plan import ErrorPolicy, Order, Plan, Queue, Task
from reflow_lang.runtime.dedup import RecentIds, Via, ViaInput, remembering, stamp_at
from reflow_lang.runtime.events import Batch, Offsets, derive
from reflow_lang.runtime.ports import QueueInput
from reflow_lang.runtime.queue import MemoryQueue


def _offsets(start: int, stop: int) -> Batch:
    return Batch(list(range(start, stop)), Offsets("src", start, stop))


async def test_merge_inputs_tag_the_ids_of_what_they_forward() -> None:
    left = MemoryQueue("l", 8, ["merge"])
    right = MemoryQueue("r", 8, ["merge"])
    input = ViaInput(QueueInput([left, right], "merge"), ["m[0]", "m[1]"])
    left.put_nowait(_offsets(0, 1))
    right.put_nowait(_offsets(0, 1))
    ids = set()
    for _ in range(2):
        _, item = await input.take(10)
        assert isinstance(item, Batch)
        ids.update(item.ids())
    assert ids == {("src@m[0]", 0), ("src@m[1]", 0)}


async def test_merge_copies_of_one_event_are_both_kept_downstream() -> None:
    # A diamond: the two copies have distinct ids, so the queue after the merge
    # stores both, and drops only a replay of either.
    after = MemoryQueue("after", 8, ["sink"], remember="recent")
    first = Batch([0], Via(Offsets("src", 0, 1), "m[0]"))
    second = Batch([0], Via(Offsets("src", 0, 1), "m[1]"))

    assert after.put_nowait(first).accepted == 1
    assert after.put_nowait(second).accepted == 1
    assert after.put_nowait(first).accepted == 1
    assert after.statistics().tail == 2


def test_recent_ids_forget_the_oldest_beyond_their_bound() -> None:
    recent = RecentIds(3)
    recent.add([("s", 1), ("s", 2)])
    recent.add([("s", 3), ("s", 4)])
    assert len(recent) == 2  # the oldest batch is forgotten whole
    assert ("s", 1) not in recent
    assert ("s", 4) in recent
    assert recent.any_of([("s", 9), ("s", 3)])


def _plan(delivery: str, order: str = "total", dead_letter: bool = False) -> Plan:
    policy = ErrorPolicy("dead_letter", 0, "dead") if dead_letter else ErrorPolicy()
    source = Task("src", "source", "t:1", output="q")
    stage = Task(
        "m",
        "map",
        "t:2",
        inputs=("q",),
        output="out",
        on_error=policy,
        order=Order(order),  # type: ignore[arg-type]
    )
    sink = Task("k", "sink", "t:3", inputs=("out",))
    queues = [Queue("q", "src", ("m",), 8), Queue("out", "m", ("k",), 8)]
    tasks = [source, stage, sink]
    if dead_letter:
        tasks.append(Task("d", "sink", "t:4", inputs=("dead",)))
        queues.append(Queue("dead", "m", ("d",), 8))
    return Plan("f", "f.flow", delivery, (), tuple(tasks), tuple(queues))  # type: ignore[arg-type]


def test_remembering_follows_delivery_order_and_dead_letters() -> None:
    assert remembering(_plan("at_least_once"), "out") == "total"
    assert remembering(_plan("exactly_once", "partial"), "out") == "recent"
    assert remembering(_plan("at_least_once", dead_letter=True), "dead") == "recent"
    assert remembering(_plan("at_most_once"), "out") == "none"
    # The order is the producer's: the source's queue keeps `total` before a stage
    # that keeps none.
    assert remembering(_plan("exactly_once", "none"), "q") == "total"


@settings(max_examples=40, deadline=None)
@given(
    counts=st.lists(st.integers(min_value=0, max_value=4), min_size=1, max_size=10),
    data=st.data(),
)
def test_stamp_at_agrees_with_materialise(
    counts: list[int], data: st.DataObject
) -> None:
    split = derive(Offsets("src", 3, 3 + len(counts)), counts, split=True)
    keep = data.draw(
        st.lists(st.integers(0, 1), min_size=len(split), max_size=len(split))
    )
    for stamps in (split, derive(split, keep, split=False), Via(split, "m")):
        every = stamps.materialise()
        assert [stamp_at(stamps, i) for i in range(len(stamps))] == every
