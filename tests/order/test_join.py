"""`join`: the pairs of a symmetric hash join equal a reference join, as multisets.

Both sides come from sources of random length (one may be empty, or end long before
the other), every event is delayed at random, and the unmatched rows of `left` and
`outer` joins come with `None` once both sides have ended. Every test runs in both
modes (the `mode` fixture).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from .helpers import examples, fns, only, run

side = st.lists(st.integers(min_value=0, max_value=5), max_size=25)


def reference(left: list[Any], right: list[Any], how: str) -> Counter[Any]:
    """The join computed by nested loops."""
    pairs = Counter((a, b) for a in left for b in right if a[0] == b[0])
    if how in ("left", "outer"):
        right_keys = {b[0] for b in right}
        pairs.update((a, None) for a in left if a[0] not in right_keys)
    if how == "outer":
        left_keys = {a[0] for a in left}
        pairs.update((None, b) for b in right if b[0] not in left_keys)
    return pairs


def test_join_equals_the_reference_join(mode: str) -> None:
    @examples(mode, 30)
    @given(
        left=side,
        right=side,
        how=st.sampled_from(["inner", "left", "outer"]),
        capacity=st.integers(min_value=1, max_value=4),
        delays=st.lists(st.integers(min_value=0, max_value=10), min_size=1, max_size=8),
    )
    def check(
        left: list[int], right: list[int], how: str, capacity: int, delays: list[int]
    ) -> None:
        lefts = [(key, "L", position) for position, key in enumerate(left)]
        rights = [(key, "R", position) for position, key in enumerate(right)]
        fns.configure(lefts, right=rights, delays=delays)
        _, sinks = run(
            "xs = source f.events()\n"
            "ys = source f.right_events()\n"
            f"a = xs | map f.work [capacity = {capacity}]\n"
            f"b = ys | map f.work [capacity = {capacity}]\n"
            f"join a by f.key_of, b by f.key_of [how = {how}] | sink f.work\n",
            mode,
        )
        assert Counter(only(sinks)) == reference(lefts, rights, how)

    check()


def test_join_by_a_field_pairs_mappings(mode: str) -> None:
    fns.configure(
        [{"id": 1, "name": "ann"}, {"id": 2, "name": "bob"}],
        right=[{"id": 2, "total": 5}, {"id": 3, "total": 7}],
    )
    _, sinks = run(
        "xs = source f.events()\n"
        "ys = source f.right_events()\n"
        'join xs by "id", ys by "id" [how = outer] | sink f.work\n',
        mode,
    )
    assert Counter(map(repr, only(sinks))) == Counter(
        map(
            repr,
            [
                ({"id": 2, "name": "bob"}, {"id": 2, "total": 5}),
                ({"id": 1, "name": "ann"}, None),
                (None, {"id": 3, "total": 7}),
            ],
        )
    )


def test_join_does_not_wait_for_a_side_that_is_all_filtered_out(mode: str) -> None:
    fns.configure(
        [(1, "L", 0), (2, "L", 1)], right=[(1, "R", 0)], dropped={(1, "R", 0)}
    )
    _, sinks = run(
        "xs = source f.events()\n"
        "ys = source f.right_events() | filter f.keep\n"
        "join xs by f.key_of, ys by f.key_of [how = left] | sink f.work\n",
        mode,
    )
    assert sorted(only(sinks)) == [((1, "L", 0), None), ((2, "L", 1), None)]
