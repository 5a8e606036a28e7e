"""CURVE keys for a queue server reachable beyond loopback, and the files they live in.

`generate(directory)` writes two key pairs as z85 text: the server's (`server.key`,
`server.key_secret`) and one client's (`client.key`, `client.key_secret`); secret
files are readable by their owner only. A server loads its pair and the public keys
of the clients it lets in (`client.key`, and any `*.client.key` added by hand for
more clients); a client loads its pair and the server's public key. A client whose
key is not listed gets no answer at all (ZeroMQ's CURVE handshake fails), which the
client reports as a server that did not answer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import zmq

from reflow_lang.errors import TransportError

SERVER_PUBLIC = "server.key"
SERVER_SECRET = "server.key_secret"
CLIENT_PUBLIC = "client.key"
CLIENT_SECRET = "client.key_secret"
MORE_CLIENTS = "*.client.key"


@dataclass(frozen=True, slots=True)
class ServerKeys:
    """What a server needs: its key pair and the public keys of allowed clients."""

    public: bytes
    secret: bytes
    clients: frozenset[bytes]
    """The z85 public keys of the clients the server answers."""


@dataclass(frozen=True, slots=True)
class ClientKeys:
    """What a client needs: its key pair and the server's public key."""

    public: bytes
    secret: bytes
    server: bytes


def generate(directory: str | os.PathLike[str]) -> None:
    """Writes a server key pair and a client key pair into `directory`.

    Refuses to overwrite existing keys: replacing them would lock out every host
    that has a copy of the old ones.
    """
    folder = Path(directory)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        msg = f"cannot make the folder `{folder}` for CURVE keys: {error.strerror}"
        raise TransportError(msg) from None
    names = (SERVER_PUBLIC, SERVER_SECRET, CLIENT_PUBLIC, CLIENT_SECRET)
    existing = [name for name in names if (folder / name).exists()]
    if existing:
        msg = f"`{folder / existing[0]}` exists; keys are never overwritten"
        raise TransportError(msg)

    for public_name, secret_name in (
        (SERVER_PUBLIC, SERVER_SECRET),
        (CLIENT_PUBLIC, CLIENT_SECRET),
    ):
        public, secret = zmq.curve_keypair()
        _write(folder / public_name, public, 0o644)
        _write(folder / secret_name, secret, 0o600)


def load_server(directory: str | os.PathLike[str]) -> ServerKeys:
    """The server's keys from `directory`; see the module docstring."""
    folder = _folder(directory)
    clients = (
        {_read(folder / CLIENT_PUBLIC)} if (folder / CLIENT_PUBLIC).exists() else set()
    )
    clients.update(_read(path) for path in sorted(folder.glob(MORE_CLIENTS)))
    if not clients:
        msg = f"`{folder}` holds no client public key (`{CLIENT_PUBLIC}`)"
        raise TransportError(msg)
    return ServerKeys(
        _read(folder / SERVER_PUBLIC), _read(folder / SERVER_SECRET), frozenset(clients)
    )


def load_client(directory: str | os.PathLike[str]) -> ClientKeys:
    """A client's keys from `directory`; see the module docstring."""
    folder = _folder(directory)
    return ClientKeys(
        _read(folder / CLIENT_PUBLIC),
        _read(folder / CLIENT_SECRET),
        _read(folder / SERVER_PUBLIC),
    )


def _folder(directory: str | os.PathLike[str]) -> Path:
    folder = Path(directory)
    if not folder.is_dir():
        msg = (
            f"`{folder}` is not a folder of CURVE keys; `reflowc keys {folder}` "
            "makes one"
        )
        raise TransportError(msg)
    return folder


def _write(path: Path, key: bytes, mode: int) -> None:
    # Created with its final mode: a secret is never readable by others, even briefly.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "wb") as file:
        file.write(key + b"\n")


def _read(path: Path) -> bytes:
    try:
        key = path.read_bytes().strip()
    except OSError as error:
        msg = f"cannot read the CURVE key `{path}`: {error.strerror}"
        raise TransportError(msg) from None
    if len(key) != 40:
        msg = f"`{path}` does not hold a z85 CURVE key (40 characters)"
        raise TransportError(msg)
    return key
