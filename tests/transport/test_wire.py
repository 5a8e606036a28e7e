"""The wire format: plain data and queue items survive a round trip; nothing else
crosses, and what is refused is named."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reflow_lang.errors import WireError
from reflow_lang.runtime.dedup import Via
from reflow_lang.runtime.events import (
    END_OF_SOURCE,
    Batch,
    Derived,
    Listed,
    Offsets,
    Stamps,
    derive,
)
from reflow_lang.runtime.queue import DELETED
from reflow_lang.runtime.rejoin import Concat
from reflow_lang.runtime.transport.wire import decode_item, encode_item, pack, unpack

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.binary(max_size=8)
)
hashables = st.recursive(scalars, lambda inner: st.tuples(inner, inner), max_leaves=4)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(hashables, inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(values)
def test_pack_round_trip_keeps_every_plain_type(value: Any) -> None:
    again = unpack(pack(value))

    assert again == value
    assert _shape(again) == _shape(value)


def _shape(value: Any) -> Any:
    # Equality says 1 == 1.0 == True and (1,) != [1] only sometimes: compare types too.
    if isinstance(value, list | tuple):
        return (type(value), [_shape(v) for v in value])
    if isinstance(value, dict):
        return (dict, sorted((repr(k), _shape(v)) for k, v in value.items()))
    return type(value)


def test_pack_round_trip_keeps_deleted_marker() -> None:
    assert unpack(pack({("acc", "a"): DELETED, "b": 1})) == {
        ("acc", "a"): DELETED,
        "b": 1,
    }


def _offsets() -> st.SearchStrategy[Stamps]:
    return st.builds(
        lambda source, start, length: Offsets(source, start, start + length),
        st.sampled_from(["lines", "clicks"]),
        st.integers(0, 10**6),
        st.integers(1, 6),
    )


def _derived(parent: st.SearchStrategy[Stamps]) -> st.SearchStrategy[Stamps]:
    @st.composite
    def build(draw: st.DrawFn) -> Stamps:
        base = draw(parent)
        counts = draw(
            st.lists(st.integers(0, 3), min_size=len(base), max_size=len(base))
        )
        stamps = derive(base, counts, split=draw(st.booleans()))
        if not len(stamps):
            return stamps
        start = draw(st.integers(0, len(stamps) - 1))
        stop = draw(st.integers(start + 1, len(stamps)))
        return stamps.slice(start, stop)

    return build()


def _listed(parent: st.SearchStrategy[Stamps]) -> st.SearchStrategy[Stamps]:
    return parent.map(lambda s: Listed(s.origin, tuple(s.materialise())))


def _via(parent: st.SearchStrategy[Stamps]) -> st.SearchStrategy[Stamps]:
    return st.builds(Via, parent, st.sampled_from(["merge[0]", "merge[1]"]))


def _concat(parent: st.SearchStrategy[Stamps]) -> st.SearchStrategy[Stamps]:
    return st.lists(parent, min_size=1, max_size=3).map(
        lambda pieces: Concat(pieces[0].origin, tuple(pieces))
    )


stamps = st.recursive(
    _offsets(),
    lambda inner: _derived(inner) | _listed(inner) | _via(inner) | _concat(inner),
    max_leaves=4,
)


@settings(max_examples=150, deadline=None)
@given(stamps, st.data())
def test_item_round_trip_keeps_values_stamps_and_keys(
    stamps: Stamps, data: Any
) -> None:
    count = len(stamps)
    batch_values = data.draw(st.lists(values, min_size=count, max_size=count))
    keys = data.draw(st.none() | st.lists(hashables, min_size=count, max_size=count))
    batch = Batch(batch_values, stamps, keys)

    again = decode_item(encode_item(batch, "split"))

    assert isinstance(again, Batch)
    assert again.values == batch.values
    assert again.keys == batch.keys
    assert again.ids() == batch.ids()
    assert _stamp_fields(again.stamps) == _stamp_fields(batch.stamps)


def _stamp_fields(stamps: Stamps) -> Any:
    # `Derived.ends` is recomputed on decode; a slice may have had none: compare the rest.
    if isinstance(stamps, Derived):
        parent = _stamp_fields(stamps.parent)
        return (
            "derived",
            parent,
            list(stamps.counts),
            stamps.split,
            stamps.start,
            stamps.stop,
        )
    if isinstance(stamps, Via):
        return ("via", _stamp_fields(stamps.inner), stamps.tag)
    if isinstance(stamps, Concat):
        return ("concat", stamps.source, [_stamp_fields(p) for p in stamps.pieces])
    return stamps


def test_decoded_derived_stamps_know_their_ends() -> None:
    stamps = Derived(Offsets("lines", 0, 3), [2, 0, 1], True, 1, 3)

    again = decode_item(encode_item(Batch(["a", "b"], stamps), "split"))

    assert isinstance(again, Batch) and isinstance(again.stamps, Derived)
    assert list(again.stamps.ends) == [2, 2, 3]
    assert again.ids() == [("lines", 0, 1), ("lines", 2, 0)]


def test_item_round_trip_keeps_end_of_source() -> None:
    assert decode_item(encode_item(END_OF_SOURCE, "lines")) == END_OF_SOURCE


def test_encode_item_names_stage_and_type_of_a_foreign_value() -> None:
    batch = Batch(["1.5", Decimal("2.5")], Offsets("lines", 0, 2))

    with pytest.raises(WireError) as raised:
        encode_item(batch, "parse")

    assert str(raised.value) == (
        "stage `parse` produced a value of type `Decimal` that cannot cross a process "
        "boundary; return plain data (str, int, float, bool, None, bytes, list, tuple, "
        "dict)"
    )


def test_encode_item_refuses_a_foreign_key_and_a_huge_integer() -> None:
    keyed = Batch(["a"], Offsets("lines", 0, 1), [frozenset({1})])
    huge = Batch([2**64], Offsets("lines", 0, 1))

    with pytest.raises(WireError, match="value of type `frozenset`"):
        encode_item(keyed, "key")
    with pytest.raises(WireError) as raised:
        encode_item(huge, "square")

    assert str(raised.value) == (
        "stage `square` produced an integer outside the 64-bit range, which cannot "
        "cross a process boundary; return it as a str"
    )


def test_pack_names_the_type_it_refuses() -> None:
    with pytest.raises(WireError) as raised:
        pack({"state": {1, 2}})

    assert str(raised.value) == (
        "a value of type `set` cannot cross a process boundary; send plain data "
        "(str, int, float, bool, None, bytes, list, tuple, dict)"
    )


def test_pack_sends_subclasses_of_plain_types_as_their_base() -> None:
    from collections import OrderedDict, namedtuple

    point = namedtuple("point", "x y")

    assert unpack(pack([OrderedDict(a=1), point(1, 2)])) == [{"a": 1}, (1, 2)]


@pytest.mark.parametrize(
    "values",
    [
        [("a", 1), ("b", 2)],  # flat records: the fast path
        [("a", 1), ("b", (2, 3))],  # a nested tuple: the ext hook
        [("a", 1), ["b", 2]],  # a list among tuples stays a list
        [(), ("a", None, b"x", 1.5, True)],
    ],
)
def test_item_round_trip_keeps_tuple_records(values: list[Any]) -> None:
    batch = Batch(values, Offsets("counts", 0, len(values)))

    again = decode_item(encode_item(batch, "count"))

    assert isinstance(again, Batch)
    assert again.values == values
    assert _shape(again.values) == _shape(values)
