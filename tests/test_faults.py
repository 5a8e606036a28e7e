"""Fault injection: worker processes killed with SIGKILL while a job runs.

A flow with a source, a map, a flat_map (and a filter inside the split), a rejoin
and a sink runs with `reflowc run --processes`, each stage kind in its own worker
process. While it runs, the test kills a worker of each kind with `kill -9`, in a
random order, several times per run, each kill after the sink's output has moved
on since the last one (so that every kill lands in a running job). The job must
still end with exit status 0, and the sink's file must hold every event:

- exactly once, in the source's order, with `delivery = exactly_once`;
- at least once with `delivery = at_least_once` (the duplicates are counted and
  reported, never required).

Where the kills land is random; the assertions hold for every schedule. Only
loopback is used, and only processes this test started are killed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads process titles from /proc"
)

LINES = 3000
KINDS = ("read", "slow", "explode", "gather", "sink")

FUNCTIONS = '''
"""Functions of the fault-injection flow: each event names its own identity."""

import time


def slow(line):
    time.sleep(0.001)  # keeps the job running long enough to be killed mid-way
    return int(line)


def explode(number):
    return [f"{number}.{part}" for part in range(number % 4 + 1)]


def keep(part):
    number, index = map(int, part.split("."))
    return (number + index) % 3 == 0


def gather(parts):
    return ",".join(parts)
'''

FLOW = """
flow faults(path: path, out: path) [delivery = {delivery}]

use text
use python faultfns as f

read = source text.lines(path)
slow = read | map f.slow [workers = 2]
explode = slow | flat_map f.explode [batch = 4] | filter f.keep
gather = explode | rejoin f.gather [batch = 16]
gather | sink text.write_lines(out)
"""


def expected_lines() -> list[str]:
    """What the sink must write, one line per source line, in order."""
    lines = []
    for number in range(LINES):
        parts = [f"{number}.{part}" for part in range(number % 4 + 1)]
        kept = [part for part in parts if (number + int(part.split(".")[1])) % 3 == 0]
        lines.append(",".join(kept))
    return lines


def write_flow(directory: Path, delivery: str) -> Path:
    (directory / "faultfns.py").write_text(FUNCTIONS, encoding="utf-8")
    (directory / "numbers.txt").write_text(
        "".join(f"{number}\n" for number in range(LINES)), encoding="utf-8"
    )
    flow = directory / "faults.flow"
    flow.write_text(FLOW.format(delivery=delivery), encoding="utf-8")
    return flow


def worker_pids(stage: str, flow: str = "faults") -> list[int]:
    """The processes whose title says they run `stage` of the flow `flow` (a stage
    is named `slow/map`, a sink `line11/sink`: any part of the name will do)."""
    prefix = f"reflow worker {flow}/".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # the process ended while we looked
        title = cmdline.split(b"\0")[0]
        if (
            title.startswith(prefix)
            and f"/{stage}/" in f"/{title[len(prefix) :].decode()}/"
        ):
            pids.append(int(entry.name))
    return pids


def output_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1


def wait_for_progress(job: subprocess.Popen[bytes], out: Path, since: int) -> bool:
    """Waits until the sink's file changed size, or the job ended (False)."""
    while job.poll() is None:
        if output_size(out) != since:
            return True
        time.sleep(0.01)  # polls an external process: no event to wait on
    return False


def inject(
    job: subprocess.Popen[bytes],
    out: Path,
    rng: random.Random,
    victims: list[str],
    flow: str = "faults",
) -> list[str]:
    """Kills the workers of the stages named in `victims`, in a random order."""
    kills = []
    victims = list(victims)
    rng.shuffle(victims)
    for stage in victims:
        if not wait_for_progress(job, out, output_size(out)):
            break
        pids = worker_pids(stage, flow)
        if not pids:
            continue  # between a death and its restart, or already ended
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
        kills.append(stage)
    return kills


def run_with_kills(tmp_path: Path, delivery: str, seed: int) -> tuple[int, str, Path]:
    """Runs the flow, killing a worker of each stage kind, twice over."""
    flow = write_flow(tmp_path, delivery)
    out = tmp_path / "out.txt"
    params = {"path": str(tmp_path / "numbers.txt"), "out": str(out)}
    victims = list(KINDS) * 2
    status, stderr = run_killed(tmp_path, flow, "faults", params, out, victims, seed)
    return status, stderr, out


def run_killed(
    tmp_path: Path,
    flow: Path,
    name: str,
    params: dict[str, str],
    out: Path,
    victims: list[str],
    seed: int,
) -> tuple[int, str]:
    """Runs `flow` (the file of the flow `name`) as processes, killing the workers
    of `victims` (see `inject`); answers its exit status and standard error."""
    command = [
        sys.executable,
        "-m",
        "reflow_lang.cli",
        "run",
        str(flow),
        "--processes",
        "--restarts",
        "20",
        *(
            argument
            for name, value in params.items()
            for argument in ("-p", f"{name}={value}")
        ),
        "-q",
    ]
    job = subprocess.Popen(command, cwd=tmp_path, stderr=subprocess.PIPE)
    try:
        kills = inject(job, out, random.Random(seed), victims, name)
        _, stderr = job.communicate(timeout=120)
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
    print(f"seed {seed}: killed {kills}")
    return job.returncode, stderr.decode()


@pytest.mark.parametrize("seed", [1, 2])
def test_faults_exactly_once_sink_sees_every_event_once(
    tmp_path: Path, seed: int
) -> None:
    status, stderr, out = run_with_kills(tmp_path, "exactly_once", seed)

    assert status == 0, stderr
    assert out.read_text(encoding="utf-8").splitlines() == expected_lines()


def test_faults_at_least_once_sink_sees_every_event(tmp_path: Path) -> None:
    status, stderr, out = run_with_kills(tmp_path, "at_least_once", seed=3)

    assert status == 0, stderr
    written = Counter(out.read_text(encoding="utf-8").splitlines())
    expected = Counter(expected_lines())
    assert not expected - written, "events lost"
    duplicates = sum((written - expected).values())
    print(f"at least once: {duplicates} duplicate lines")


def test_faults_leave_no_process_behind(tmp_path: Path) -> None:
    status, stderr, _ = run_with_kills(tmp_path, "exactly_once", seed=4)

    assert status == 0, stderr
    assert not [pid for stage in KINDS for pid in worker_pids(stage)]


# A join killed mid-way: two rewindable file sources, a join, a file sink.

JOIN_LEFT = 2000  # left events `k,L,i`, keyed `i % 800`
JOIN_RIGHT = 1000  # right events `k,R,j`, keyed `j % 700`

JOIN_FUNCTIONS = '''
"""The key of the join-fault flow: slow enough to be killed mid-way."""

import time


def key(line):
    time.sleep(0.0005)
    return line.split(",")[0]
'''

# Small source queues keep the sources running (held back by the join) to be killed.
JOIN_FLOW = """
flow joinfaults(left: path, right: path, out: path) [delivery = exactly_once]

use text
use python joinfns as f

lefts = source text.lines(left) [capacity = 64]
rights = source text.lines(right) [capacity = 64]
pairs = join lefts by f.key, rights by f.key [how = outer]
pairs | sink text.write_lines(out)
"""


def join_events() -> tuple[list[str], list[str]]:
    lefts = [f"{i % 800},L,{i}" for i in range(JOIN_LEFT)]
    rights = [f"{j % 700},R,{j}" for j in range(JOIN_RIGHT)]
    return lefts, rights


def expected_pairs() -> Counter[str]:
    """The outer join by nested loops, as the sink writes it: each line once."""
    lefts, rights = join_events()
    by_key: dict[str, list[str]] = {}
    for right in rights:
        by_key.setdefault(right.split(",")[0], []).append(right)
    left_keys = {left.split(",")[0] for left in lefts}
    pairs = [
        (left, right) for left in lefts for right in by_key.get(left.split(",")[0], [])
    ]
    pairs += [(left, None) for left in lefts if left.split(",")[0] not in by_key]
    pairs += [(None, right) for right in rights if right.split(",")[0] not in left_keys]
    return Counter(map(str, pairs))


def test_faults_a_killed_join_pairs_every_match_once(tmp_path: Path) -> None:
    (tmp_path / "joinfns.py").write_text(JOIN_FUNCTIONS, encoding="utf-8")
    lefts, rights = join_events()
    (tmp_path / "left.txt").write_text("".join(f"{e}\n" for e in lefts), "utf-8")
    (tmp_path / "right.txt").write_text("".join(f"{e}\n" for e in rights), "utf-8")
    flow = tmp_path / "joinfaults.flow"
    flow.write_text(JOIN_FLOW, encoding="utf-8")
    out = tmp_path / "out.txt"
    params = {
        "left": str(tmp_path / "left.txt"),
        "right": str(tmp_path / "right.txt"),
        "out": str(out),
    }
    victims = ["pairs"] * 4 + ["lefts", "rights", "sink"]

    status, stderr = run_killed(tmp_path, flow, "joinfaults", params, out, victims, 5)

    assert status == 0, stderr
    assert Counter(out.read_text(encoding="utf-8").splitlines()) == expected_pairs()
