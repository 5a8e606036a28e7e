"""Two hosts: the queue server on one, the workers on the other, with CURVE keys.

The hosts are two network namespaces joined by a veth pair (10.231.x.1 and
10.231.x.2), made by this test and removed after it; where namespaces cannot be made
(no root, no `ip`), the two hosts are two loopback addresses instead. The server
binds the first host's address, which is not loopback in the namespace setting, so
it must have keys; the workers connect from the second host with the client keys.
A client whose key the server does not know is refused: its requests get no answer
and it fails with a message that says so, within the configured time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FLOW = """
flow hosts(path: path, out: path) [delivery = exactly_once]

use text

numbers = source text.lines(path)
    | map str.upper
    | flat_map text.words
numbers | sink text.write_lines(out)
"""


@dataclass(frozen=True, slots=True)
class Hosts:
    """Where the server and the workers run: a command prefix and an address each."""

    server_prefix: tuple[str, ...]
    server_address: str
    worker_prefix: tuple[str, ...]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def _namespaces(tag: str) -> Hosts | None:
    # Two namespaces and a veth pair between them; None where they cannot be made.
    if shutil.which("ip") is None or os.geteuid() != 0:
        return None
    server, worker = f"rfs{tag}", f"rfw{tag}"
    try:
        _ip("netns", "add", server)
        _ip("netns", "add", worker)
        _ip("link", "add", f"{server}v", "type", "veth", "peer", "name", f"{worker}v")
        _ip("link", "set", f"{server}v", "netns", server)
        _ip("link", "set", f"{worker}v", "netns", worker)
        for name, address in ((server, "10.231.7.1/24"), (worker, "10.231.7.2/24")):
            _ip("-n", name, "addr", "add", address, "dev", f"{name}v")
            _ip("-n", name, "link", "set", f"{name}v", "up")
            _ip("-n", name, "link", "set", "lo", "up")
    except subprocess.CalledProcessError:
        _remove(server, worker)
        return None
    return Hosts(
        ("ip", "netns", "exec", server),
        "10.231.7.1",
        ("ip", "netns", "exec", worker),
    )


def _remove(*namespaces: str) -> None:
    for name in namespaces:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    tag = str(os.getpid() % 100000)
    made = _namespaces(tag)
    if made is None:
        yield Hosts((), "127.0.0.2", ())
        return
    try:
        yield made
    finally:
        _remove(f"rfs{tag}", f"rfw{tag}")


def reflowc(*args: str) -> list[str]:
    return [sys.executable, "-m", "reflow_lang.cli", *args]


def spelled(number: int) -> str:
    """A number in letters (`text.words` keeps no digits): 305 is `daf`."""
    return "".join(chr(ord("a") + int(digit)) for digit in str(number))


def write_flow(directory: Path) -> tuple[Path, Path, Path]:
    data = directory / "lines.txt"
    lines = "".join(f"line {spelled(n)}\n" for n in range(500))
    data.write_text(lines, encoding="utf-8")
    flow = directory / "hosts.flow"
    flow.write_text(FLOW, encoding="utf-8")
    return flow, data, directory / "out.txt"


def make_keys(directory: Path) -> Path:
    keys = directory / "keys"
    subprocess.run(reflowc("keys", str(keys)), check=True, capture_output=True)
    return keys


def start_server(
    hosts: Hosts, flow: Path, params: list[str], keys: Path
) -> tuple[subprocess.Popen[str], str]:
    bind = f"tcp://{hosts.server_address}:0"
    server = subprocess.Popen(
        [*hosts.server_prefix, *reflowc("serve", str(flow), "--bind", bind)]
        + ["--keys", str(keys), *params],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert server.stdout is not None
    endpoint = server.stdout.readline().strip()  # printed once it is bound
    assert endpoint.startswith(f"tcp://{hosts.server_address}:"), endpoint
    return server, endpoint


def stop(process: subprocess.Popen[str]) -> tuple[str, str]:
    if process.poll() is None:
        process.terminate()
    try:
        return process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()


def test_hosts_workers_on_one_host_queues_on_the_other(
    hosts: Hosts, tmp_path: Path
) -> None:
    flow, data, out = write_flow(tmp_path)
    keys = make_keys(tmp_path)
    params = ["-p", f"path={data}", "-p", f"out={out}"]
    server, endpoint = start_server(hosts, flow, params, keys)
    try:
        worker = subprocess.run(
            [*hosts.worker_prefix, *reflowc("worker", str(flow), "--connect")]
            + [endpoint, "--keys", str(keys), *params],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
        served = server.wait(timeout=60)  # it ends once every stage has ended
    finally:
        stop(server)

    assert worker.returncode == 0, worker.stderr
    assert served == 0
    expected = [word for n in range(500) for word in ("LINE", spelled(n).upper())]
    assert out.read_text(encoding="utf-8").splitlines() == expected


def test_hosts_client_with_unknown_key_is_refused(hosts: Hosts, tmp_path: Path) -> None:
    flow, data, out = write_flow(tmp_path)
    keys = make_keys(tmp_path)
    stranger = make_keys(tmp_path / "stranger")
    # The stranger knows the server's public key, but the server does not know it.
    shutil.copy(keys / "server.key", stranger / "server.key")
    params = ["-p", f"path={data}", "-p", f"out={out}"]
    server, endpoint = start_server(hosts, flow, params, keys)
    try:
        worker = subprocess.run(
            [*hosts.worker_prefix, *reflowc("worker", str(flow), "--connect")]
            + [endpoint, "--keys", str(stranger), "--timeout", "0.5", *params],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
    finally:
        stop(server)

    assert worker.returncode == 1
    assert endpoint in worker.stderr
    assert "no answer" in worker.stderr
    assert not out.exists() or out.read_text(encoding="utf-8") == ""
