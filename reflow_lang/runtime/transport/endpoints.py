"""ZeroMQ endpoints: which a server may bind, which are loopback, which IPv6."""

from __future__ import annotations

import ipaddress

from reflow_lang.errors import TransportError


def check_endpoint(endpoint: str, use: str = "serve at") -> None:
    """Raises `TransportError` for what is not a ZeroMQ endpoint to bind or connect
    to (`use` says which, for the message): `tcp://HOST:PORT` (a port from 0, any
    free one when binding, to 65535), `ipc://PATH`."""
    transport, separator, rest = endpoint.partition("://")
    if not separator or transport not in ("tcp", "ipc", "inproc"):
        msg = (
            f"`{endpoint}` is not an address to {use}; write `tcp://HOST:PORT` "
            f"(e.g. `tcp://127.0.0.1:5555`) or `ipc://PATH`"
        )
        raise TransportError(msg)
    if transport != "tcp":
        return
    port = rest.rpartition(":")[2]
    if port != "*" and not (port.isdigit() and int(port) <= 65535):
        msg = f"`{endpoint}` has no valid port; a TCP port is 0 (any free) to 65535"
        raise TransportError(msg)


def is_ipv6(endpoint: str) -> bool:
    """Whether an endpoint names an IPv6 address (`tcp://[::1]:5555`)."""
    return "://[" in endpoint


def is_loopback(endpoint: str) -> bool:
    """Whether a ZeroMQ endpoint is reachable from this host only."""
    transport, _, rest = endpoint.partition("://")
    if transport in ("ipc", "inproc"):
        return True
    if transport != "tcp":
        return False
    host = rest.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # `*`, an interface name or a host name: not provably local
