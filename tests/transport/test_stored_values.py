"""The queue server keeps the values of a batch packed (`decode_item(stored=True)`):
what it forwards whole leaves as the bytes it came in as, and what a queue cuts
(a partial accept, a replay dropped, a read up to a limit) is decoded right."""

from __future__ import annotations

import pytest

from reflow_lang.errors import WireError
from reflow_lang.runtime.events import Batch, Offsets
from reflow_lang.runtime.queue import MemoryQueue
from reflow_lang.runtime.transport.wire import Packed, decode_item, encode_item


def _batch(start: int, stop: int, *, keyed: bool = False) -> Batch:
    values = [(f"w{i}", i) for i in range(start, stop)]
    keys = [f"k{i}" for i in range(start, stop)] if keyed else None
    return Batch(values, Offsets("lines", start, stop), keys)


def _stored(batch: Batch) -> Batch:
    item = decode_item(encode_item(batch, "lines"), stored=True)
    assert isinstance(item, Batch)
    return item


def test_stored_batch_is_forwarded_as_the_same_bytes() -> None:
    data = encode_item(_batch(0, 300, keyed=True), "lines")

    stored = decode_item(data, stored=True)

    assert isinstance(stored, Batch) and isinstance(stored.values, Packed)
    assert len(stored) == 300
    assert encode_item(stored, "words") == data


def test_stored_batch_sliced_decodes_values_keys_and_tuples() -> None:
    stored = _stored(_batch(0, 20, keyed=True))

    again = decode_item(encode_item(stored.slice(5, 8), "words"))

    assert again == _batch(5, 8, keyed=True)


def test_queue_of_stored_batches_cuts_them_like_decoded_ones() -> None:
    queue = MemoryQueue("words", 10, ["sink"], remember="total")

    first = queue.put_nowait(_stored(_batch(0, 6)))
    replay = queue.put_nowait(_stored(_batch(4, 12)))  # 4, 5 held; 8 of 10 fit
    read = queue.read_nowait("sink", 0, 3)
    rest = queue.read_nowait("sink", 3, 100)
    tail = queue.read_nowait("sink", 6, 100)

    assert (first.accepted, replay.accepted, replay.room) == (6, 6, 0)
    assert decode_item(encode_item(read, "words")) == _batch(0, 3)
    assert decode_item(encode_item(rest, "words")) == _batch(3, 6)
    decoded = decode_item(encode_item(tail, "words"))
    assert isinstance(decoded, Batch)
    assert decoded.values == _batch(6, 10).values
    assert decoded.ids() == _batch(6, 10).ids()


def test_packed_refuses_bytes_that_are_no_array() -> None:
    with pytest.raises(WireError) as raised:
        Packed(b"\xa3abc")

    assert str(raised.value) == (
        "expected a packed msgpack array on the wire, got a header byte 0xa3"
    )
