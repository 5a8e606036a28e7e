"""Queues across processes: a queue server, its clients, the wire format and keys.

`QueueServer` serves a job's `MemoryQueue`s over ZeroMQ; `Connection` reaches it
from another process and hands out `RemoteQueue`s, which workers use like any other
`EventQueue`. ZeroMQ is imported only in this package.
"""

from __future__ import annotations

from reflow_lang.runtime.transport.client import Connection
from reflow_lang.runtime.transport.keys import (
    ClientKeys,
    ServerKeys,
    generate,
    load_client,
    load_server,
)
from reflow_lang.runtime.transport.remote import RemoteQueue
from reflow_lang.runtime.transport.server import QueueServer
from reflow_lang.runtime.transport.wire import (
    decode_item,
    encode_item,
    pack,
    unpack,
)

__all__ = [
    "ClientKeys",
    "Connection",
    "QueueServer",
    "RemoteQueue",
    "ServerKeys",
    "decode_item",
    "encode_item",
    "generate",
    "load_client",
    "load_server",
    "pack",
    "unpack",
]
