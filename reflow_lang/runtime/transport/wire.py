"""The wire format: msgpack, with tuples kept, and queue items encoded compactly.

Plain data crosses a process boundary as msgpack: None, bool, int, float, str,
bytes, list and dict (keys of any hashable kind) as themselves, a tuple as an ext
type holding its items (so that `(1, 2)` comes back a tuple, not a list) and the
queue's `DELETED` marker as an ext type of its own. Nothing is ever pickled: a value
of any other type is refused with a `WireError` naming its type, and, for events,
the stage that produced it.

A queue item is one msgpack document: a `Batch` as `[0, values, stamps, keys]`, its
stamps as nested lists (`Offsets`, `Derived` with its parent, `Listed`, `Via`, a
rejoin's `Concat` with its pieces), and an `Instruction` as `[1, kind]`. The values,
and the keys when there are any, are packed apart and travel as msgpack `bin`
inside the document: the queue server, which only stores and forwards them, reads
the stamps and the header of each (the number of events) and keeps the rest as
bytes (`decode_item(data, stored=True)`, giving `Packed` sequences). A batch the
server forwards whole goes out as the very bytes it came in as; only a batch a queue
must cut (a partial accept, a replay dropped, a read up to a limit) is decoded, by
`Packed` itself, when it is sliced or iterated. The hook for other types runs only
for the values that need it (tuples).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import accumulate
from typing import Any, cast, overload

import msgpack  # type: ignore[import-untyped]

from reflow_lang.errors import WireError
from reflow_lang.runtime.dedup import Via
from reflow_lang.runtime.events import (
    Batch,
    Derived,
    Instruction,
    Item,
    Listed,
    Offsets,
    Stamps,
)
from reflow_lang.runtime.queue import DELETED
from reflow_lang.runtime.rejoin import Concat

_TUPLE = 1
_DELETED = 2

_BATCH = 0
_INSTRUCTION = 1
_BATCH_OF_TUPLES = 2

_OFFSETS = 0
_DERIVED = 1
_LISTED = 2
_VIA = 3
_CONCAT = 4

PLAIN = "str, int, float, bool, None, bytes, list, tuple, dict"


class _Unsupported(Exception):
    """Raised inside msgpack's hook; turned into a `WireError` by the caller."""

    def __init__(self, kind: type) -> None:
        super().__init__(kind.__name__)
        self.kind = kind


def _default(value: object) -> object:
    # `strict_types` sends every tuple, and every subclass of a plain type, here.
    if isinstance(value, tuple):
        return msgpack.ExtType(_TUPLE, _packb(list(value)))
    if value is DELETED:
        return msgpack.ExtType(_DELETED, b"")
    for plain in _PLAIN_TYPES:
        if isinstance(value, plain):
            return plain(value)  # a named tuple's or an enum's plain value
    raise _Unsupported(type(value))


_PLAIN_TYPES: tuple[type[Any], ...] = (dict, list, str, bytes, int, float)


def _ext_hook(code: int, data: bytes) -> object:
    if code == _TUPLE:
        return tuple(_unpackb(data))
    if code == _DELETED:
        return DELETED
    msg = f"unknown msgpack ext type {code} on the wire; both ends must run one version"
    raise WireError(msg)


def _packb(value: object) -> bytes:
    return msgpack.packb(  # type: ignore[no-any-return]
        value, default=_default, use_bin_type=True, strict_types=True
    )


def _unpackb(data: bytes) -> Any:
    return msgpack.unpackb(
        data, ext_hook=_ext_hook, raw=False, strict_map_key=False, use_list=True
    )


def pack(value: object) -> bytes:
    """Encodes plain data; raises `WireError` for a value msgpack cannot carry."""
    try:
        return _packb(value)
    except _Unsupported as error:
        msg = (
            f"a value of type `{error.kind.__name__}` cannot cross a process "
            f"boundary; send plain data ({PLAIN})"
        )
        raise WireError(msg) from None
    except OverflowError:
        msg = "an integer outside the 64-bit range cannot cross a process boundary"
        raise WireError(msg) from None


def unpack(data: bytes) -> Any:
    """Decodes what `pack` encoded."""
    return _unpackb(data)


def encode_item(item: Item, stage: str) -> bytes:
    """Encodes a queue item; `stage` (its producer) is named if a value is refused."""
    if isinstance(item, Instruction):
        return _packb([_INSTRUCTION, item.kind])
    try:
        kind, values = _encode_values(item.values)
        keys = None if item.keys is None else _encode_keys(item.keys)
        return _packb([kind, values, _encode_stamps(item.stamps), keys])
    except _Unsupported as error:
        msg = (
            f"stage `{stage}` produced a value of type `{error.kind.__name__}` that "
            f"cannot cross a process boundary; return plain data ({PLAIN})"
        )
        raise WireError(msg) from None
    except OverflowError:
        msg = (
            f"stage `{stage}` produced an integer outside the 64-bit range, which "
            f"cannot cross a process boundary; return it as a str"
        )
        raise WireError(msg) from None


def _encode_values(values: list[Any]) -> tuple[int, bytes]:
    # The document kind and the packed values. Values a server stored without
    # decoding leave as they came.
    if isinstance(values, Packed):
        return (_BATCH_OF_TUPLES if values.tuples else _BATCH), values.data
    if _flat_tuples(values):
        # Records as flat tuples (a count's `(key, count)`): sent as lists, without
        # the ext hook's cost per tuple, and made tuples again on decode.
        return _BATCH_OF_TUPLES, _packb([list(value) for value in values])
    return _BATCH, _packb(values)


def _encode_keys(keys: list[Any]) -> bytes:
    # Keys keep their tuples through the ext hook: they are seldom records.
    if isinstance(keys, Packed):
        return keys.data
    return _packb(keys)


def decode_item(data: bytes, *, stored: bool = False) -> Item:
    """Decodes what `encode_item` encoded; with `stored`, the values and keys stay
    packed (`Packed`), for a queue server that only stores and forwards them."""
    document = _unpackb(data)
    if document[0] == _INSTRUCTION:
        return Instruction(document[1])
    kind, values, stamps, keys = document
    tuples = kind == _BATCH_OF_TUPLES
    if stored:
        # A stand-in for the list, inside the server only (see `Packed`).
        values = cast(list[Any], Packed(values, tuples=tuples))
        keys = None if keys is None else cast(list[Any], Packed(keys))
    else:
        values = Packed.unpack(values, tuples=tuples)
        keys = None if keys is None else _unpackb(keys)
    return Batch(values, _decode_stamps(stamps), keys)


class Packed(Sequence[Any]):
    """Values (or keys) kept as the msgpack bytes they arrived as; see the module
    docstring. Its length is read from the array's header; indexing, slicing or
    iterating decodes them (a queue that cuts a batch needs the values themselves),
    a slice as a plain list. It stands in `Batch.values` only inside the queue
    server, which never hands values to user code.
    """

    __slots__ = ("_count", "_decoded", "data", "tuples")

    def __init__(self, data: bytes, *, tuples: bool = False) -> None:
        self.data = data
        self.tuples = tuples
        self._count = _array_length(data)
        self._decoded: list[Any] | None = None

    @staticmethod
    def unpack(data: bytes, *, tuples: bool = False) -> list[Any]:
        """The values packed in `data` (records made tuples again with `tuples`)."""
        values: list[Any] = _unpackb(data)
        if tuples:
            return [tuple(value) for value in values]
        return values

    def values(self) -> list[Any]:
        """The decoded values (decoded once: a batch read in pieces is sliced
        again and again)."""
        if self._decoded is None:
            self._decoded = Packed.unpack(self.data, tuples=self.tuples)
        return self._decoded

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    @overload
    def __getitem__(self, index: int) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...

    def __getitem__(self, index: int | slice) -> Any:
        return self.values()[index]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.values())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Packed):
            other = other.values()
        return self.values() == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Packed({self._count} values, {len(self.data)} bytes)"


def _array_length(data: bytes) -> int:
    # The element count in the header of a msgpack array, without decoding it.
    if not data:
        msg = "an empty packed array on the wire"
        raise WireError(msg)
    first = data[0]
    if 0x90 <= first <= 0x9F:
        return first & 0x0F
    if first == 0xDC and len(data) >= 3:
        return int.from_bytes(data[1:3], "big")
    if first == 0xDD and len(data) >= 5:
        return int.from_bytes(data[1:5], "big")
    msg = f"expected a packed msgpack array on the wire, got a header byte {first:#x}"
    raise WireError(msg)


def _flat_tuples(values: list[Any]) -> bool:
    # Whether every value is a tuple of scalars (checked at C speed, mostly).
    if not values or type(values[0]) is not tuple:
        return False
    if not all(type(value) is tuple for value in values):
        return False
    return all(type(field) in _SCALARS for value in values for field in value)


_SCALARS = frozenset({str, int, float, bool, bytes, type(None)})


def _encode_stamps(stamps: Stamps) -> list[Any]:
    if isinstance(stamps, Offsets):
        return [_OFFSETS, stamps.source, stamps.start, stamps.stop]
    if isinstance(stamps, Derived):
        parent = _encode_stamps(stamps.parent)
        counts = list(stamps.counts)
        return [_DERIVED, parent, counts, stamps.split, stamps.start, stamps.stop]
    if isinstance(stamps, Listed):
        # Lists, not tuples: a list costs msgpack nothing, a tuple an ext round.
        return [_LISTED, stamps.source, [list(stamp) for stamp in stamps.stamps]]
    if isinstance(stamps, Via):
        return [_VIA, _encode_stamps(stamps.inner), stamps.tag]
    if isinstance(stamps, Concat):
        return [_CONCAT, stamps.source, [_encode_stamps(p) for p in stamps.pieces]]
    msg = f"stamps of type `{type(stamps).__name__}` have no wire form"
    raise WireError(msg)


def _decode_stamps(document: list[Any]) -> Stamps:
    kind = document[0]
    if kind == _OFFSETS:
        return Offsets(document[1], document[2], document[3])
    if kind == _DERIVED:
        _, parent, counts, split, start, stop = document
        ends = list(accumulate(counts))
        return Derived(_decode_stamps(parent), counts, split, start, stop, ends)
    if kind == _LISTED:
        return Listed(document[1], tuple(tuple(stamp) for stamp in document[2]))
    if kind == _VIA:
        return Via(_decode_stamps(document[1]), document[2])
    if kind == _CONCAT:
        return Concat(document[1], tuple(_decode_stamps(p) for p in document[2]))
    msg = f"unknown stamps kind {kind} on the wire; both ends must run one version"
    raise WireError(msg)


# The request protocol. A message is one frame (after the ROUTER's identity frame)
# packing a list of requests, each packed as `[request id, verb, epoch, queue, args,
# item or None]` (the item as `encode_item` made it): the requests a client made in
# one turn of its event loop. The replies to a message come back in one message, a
# list of replies each packed as `[request id, status, result, items]`; the reply to
# a parked request comes alone. Every message costs a wake-up of ZeroMQ's I/O thread
# on both sides, which is what dominates: so requests travel together.

OK = 0
"""The request was served; `result` is its answer."""
NOT_YET = 1
"""A long-poll found nothing within its `max_wait`: ask again."""
FAILED = 2
"""The request failed; `result` is `[kind, message]`, raised by the client."""
OTHER_EPOCH = 3
"""The request named an epoch that is not the server's; `result` is the server's."""
OUT_OF_ORDER = 4
"""A put arrived before an earlier put of its producer (lost on the way): it was not
applied; `result` is the sequence number expected. The client sends it again once
the earlier one is answered."""
