"""`reflowc run --processes`, `serve` and `worker`: whole jobs as OS processes.

Every test starts real processes (about 0.2 s each), so there are few of them, each
checking several things. Waiting is on files the flows' functions write or on the
processes' ends, never on a guessed delay.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.flow"))
HERE = Path(__file__).resolve().parent

# Seconds any one process-mode job here may take before the test fails.
DEADLINE = 60.0


def _reflowc(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reflow_lang.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )


def _flow(tmp_path: Path, body: str, name: str = "procs") -> Path:
    flow = tmp_path / f"{name}.flow"
    shutil.copy(HERE / "procfns.py", tmp_path / "procfns.py")
    header = f"""\
        flow {name}(out: path = "{tmp_path / "out.txt"}") [delivery = exactly_once]

        use text
        use python procfns as f
        """
    flow.write_text(textwrap.dedent(header) + textwrap.dedent(body))
    return flow


def _wait_for(path: Path, process: subprocess.Popen[str]) -> None:
    # The flow writes `path` when it gets there; a process that ended first failed.
    deadline = time.monotonic() + DEADLINE
    while not path.exists():
        if process.poll() is not None:
            _, err = process.communicate()
            pytest.fail(f"the job ended before `{path.name}` appeared: {err}")
        if time.monotonic() > deadline:
            pytest.fail(f"`{path.name}` did not appear within {DEADLINE}s")
        time.sleep(0.02)


def _children(pid: int) -> dict[int, str]:
    # Every process whose parent is `pid`, with its command line as `ps` shows it.
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid:
            found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode().strip()
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("flow", EXAMPLES, ids=lambda p: p.stem)
def test_processes_examples_give_the_local_output(flow: Path) -> None:
    local = _reflowc("run", "-q", str(flow.relative_to(ROOT)))
    processes = _reflowc("run", "-q", "--processes", str(flow.relative_to(ROOT)))

    assert local.returncode == 0, local.stderr
    assert processes.returncode == 0, processes.stderr
    # Two sinks (or two stages' log records) may share stdout (stderr): each keeps
    # its order, but how they interleave depends on the schedule, in a local run
    # too. The order of each sink's output is checked by test_examples, in both
    # modes, with every sink writing its own file.
    assert sorted(processes.stdout.splitlines()) == sorted(local.stdout.splitlines())
    # A worker's log records also name it (`[worker FLOW/STAGE]`).
    named = [
        re.sub(r"^([A-Z]+) \[worker [^\]]+\] ", r"\1 ", line)
        for line in processes.stderr.splitlines()
    ]
    assert sorted(named) == sorted(local.stderr.splitlines())
    assert local.stdout


def test_processes_titles_and_ctrl_c_drains_and_leaves_no_child(
    tmp_path: Path,
) -> None:
    flow = _flow(
        tmp_path,
        f"""\
        numbers = source f.slow_numbers("{tmp_path}")
        numbers | map f.crash_once("{tmp_path}", -1) | sink text.write_lines(out)
        """,
    )
    job = _start("run", "-q", "--processes", str(flow))
    try:
        _wait_for(tmp_path / "out.txt", job)  # the sink has written
        children = _children(job.pid)
        titles = sorted(children.values())
        job.send_signal(signal.SIGINT)
        _, err = job.communicate(timeout=DEADLINE)
    finally:
        job.kill()

    assert titles == [
        "reflow queue-server procs",
        "reflow worker procs/line6/map",
        "reflow worker procs/line6/sink",
        "reflow worker procs/numbers",
    ]
    assert job.returncode == 130, err
    assert [pid for pid in children if _alive(pid)] == []
    written = (tmp_path / "out.txt").read_text().split()
    assert written == [str(n) for n in range(len(written))]
    assert written


def test_processes_crashed_worker_is_restarted_and_output_complete(
    tmp_path: Path,
) -> None:
    flow = _flow(
        tmp_path,
        f"""\
        numbers = source f.numbers(3000)
        numbers
            | map f.crash_once("{tmp_path}", 1234) [batch = 64]
            | sink text.write_lines(out)
        """,
    )

    result = _reflowc("run", "--processes", "--color", "never", str(flow))

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "crashed-1234").exists()
    assert "worker `line6/map` ended (exit status 9); restarting it (1 of 3)" in (
        result.stderr
    )
    assert "line6/map: 1 restart of its worker" in result.stderr
    written = (tmp_path / "out.txt").read_text().split()
    assert written == [str(n) for n in range(3000)]


def test_processes_restarts_exhausted_fail_the_job(tmp_path: Path) -> None:
    flow = _flow(
        tmp_path,
        """\
        numbers = source f.numbers(10)
        numbers | map f.crash_always | sink text.write_lines(out)
        """,
    )

    result = _reflowc("run", "-q", "--processes", "--restarts", "1", str(flow))

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "reflowc: error: flow `procs` failed: the worker of stage `line6/map` ended "
        "(exit status 9) after 1 restart, the most allowed (--restarts 1); its last "
        "words on stderr: nothing",
    ]


# A map that fails on the event 3, under the default policy (`fail`).
NO_THREE = """\
numbers = source f.numbers(10)
numbers | map f.no_three | sink text.write_lines(out)
"""


def test_processes_user_error_fails_at_once_as_locally(tmp_path: Path) -> None:
    flow = _flow(tmp_path, NO_THREE)

    local = _reflowc("run", "-q", str(flow))
    processes = _reflowc("run", "-q", "--processes", str(flow))

    assert (processes.returncode, processes.stderr) == (1, local.stderr)
    assert local.stderr.splitlines() == [
        "reflowc: error: flow `procs` failed: stage `line6/map` failed: `f.no_three` "
        "raised ValueError: no 3; event ('numbers', 3): 3",
    ]


def test_serve_and_workers_with_keys_run_a_flow_in_three_commands(
    tmp_path: Path,
) -> None:
    flow = _flow(
        tmp_path,
        f"""\
        numbers = source f.numbers(500)
        numbers | map f.crash_once("{tmp_path}", -1) | sink text.write_lines(out)
        """,
    )
    keys = _reflowc("keys", "-q", str(tmp_path / "keys"))
    again = _reflowc("keys", str(tmp_path / "keys"))
    secure = ["--keys", str(tmp_path / "keys")]
    server = _start("serve", "-q", str(flow), "--bind", "tcp://127.0.0.1:0", *secure)
    try:
        assert server.stdout is not None
        endpoint = server.stdout.readline().strip()
        connect = ["-q", str(flow), "--connect", endpoint, *secure]
        source = _start("worker", *connect, "--stage", "numbers")
        rest = _reflowc(
            "worker", *connect, "--stage", "line6/map", "--stage", "line6/sink"
        )
        source_out, source_err = source.communicate(timeout=DEADLINE)
        _, server_err = server.communicate(timeout=DEADLINE)
    finally:
        server.kill()
        source.kill()

    assert (keys.returncode, keys.stderr) == (0, "")
    assert (again.returncode, again.stderr) == (
        1,
        f"reflowc: error: `{tmp_path / 'keys' / 'server.key'}` exists; keys are never "
        "overwritten\n",
    )
    assert endpoint.startswith("tcp://127.0.0.1:")
    assert (rest.returncode, rest.stderr) == (0, "")
    assert (source.returncode, source_err) == (0, "")
    assert (server.returncode, server_err) == (0, "")
    written = (tmp_path / "out.txt").read_text().split()
    assert written == [str(n) for n in range(500)]


def _start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "reflow_lang.cli", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=None if env is None else {**os.environ, **env},
    )


def test_worker_of_another_plan_is_refused_at_the_handshake(tmp_path: Path) -> None:
    flow = _flow(
        tmp_path,
        """\
        numbers = source f.numbers(50)
        numbers | sink text.write_lines(out)
        """,
    )
    server = _start("serve", "-q", str(flow), "--bind", "tcp://127.0.0.1:0")
    try:
        assert server.stdout is not None
        endpoint = server.stdout.readline().strip()
        other = f"out={tmp_path / 'elsewhere.txt'}"
        worker = _reflowc("worker", "-q", str(flow), "--connect", endpoint, "-p", other)
    finally:
        server.kill()
        server.communicate()

    assert worker.returncode == 1
    assert re.fullmatch(
        r"reflowc: error: flow `procs` failed: the queue server at `tcp://127\.0\.0\.1:"
        r"\d+` serves another plan \(its fingerprint is \w+, this worker's \w+\): "
        r"compile the same flow file with the same -p values on every host\n",
        worker.stderr,
    )
    assert not (tmp_path / "elsewhere.txt").exists()


def test_processes_killed_supervisor_leaves_no_file_and_no_child(
    tmp_path: Path,
) -> None:
    flow = _flow(
        tmp_path,
        f"""\
        numbers = source f.slow_numbers("{tmp_path}")
        numbers | sink text.write_lines(out)
        """,
    )
    temp = tmp_path / "temp"
    temp.mkdir()
    job = _start("run", "-q", "--processes", str(flow), env={"TMPDIR": str(temp)})
    try:
        _wait_for(tmp_path / "out.txt", job)
        children = _children(job.pid)
        job.kill()
        job.communicate(timeout=DEADLINE)
        # They notice within a fifth of a second that their parent is gone.
        deadline = time.monotonic() + DEADLINE
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        job.kill()

    assert len(children) == 3
    assert [pid for pid in children if _alive(pid)] == []
    assert list(temp.iterdir()) == []


def test_processes_source_reads_the_supervisors_stdin(tmp_path: Path) -> None:
    # The supervisor's children get the plan on a pipe of their own, not on stdin.
    flow = tmp_path / "echo.flow"
    flow.write_text(
        f'flow echo\nuse text\nsource text.lines("-") '
        f'| sink text.write_lines("{tmp_path / "out.txt"}")\n'
    )

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "reflow_lang.cli",
            "run",
            "-q",
            "--processes",
            str(flow),
        ],
        cwd=ROOT,
        input="one\ntwo\nthree\n",
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )

    assert (result.returncode, result.stderr) == (0, "")
    assert (tmp_path / "out.txt").read_text() == "one\ntwo\nthree\n"


def test_processes_debug_prints_the_workers_traceback_as_locally(
    tmp_path: Path,
) -> None:
    flow = _flow(tmp_path, NO_THREE)

    plain = _reflowc("run", "--processes", str(flow))
    debug = _reflowc("run", "--processes", "--debug", str(flow))
    local = _reflowc("run", "--debug", str(flow))

    error = (
        "reflowc: error: flow `procs` failed: stage `line6/map` failed: `f.no_three` "
        "raised ValueError: no 3; event ('numbers', 3): 3"
    )
    assert (plain.returncode, debug.returncode) == (1, 1)
    assert plain.stderr.splitlines()[-2:] == [
        error,
        "(run with --debug for the Python traceback)",
    ]
    assert "Traceback" not in plain.stderr
    # From the error on, as a local run prints it: the user's frame, then the
    # runtime's (the same code in a worker process).
    shown = debug.stderr[debug.stderr.index(error) :]
    assert shown == local.stderr[local.stderr.index(error) :]
    assert "Traceback (most recent call last):" in debug.stderr
    assert "    raise ValueError(msg)\nValueError: no 3\n" in debug.stderr
    assert debug.stderr.endswith(
        "reflow_lang.errors.StageError: stage `line6/map` failed: `f.no_three` "
        "raised ValueError: no 3; event ('numbers', 3): 3\n"
    )


def test_processes_verbose_log_records_name_their_worker(tmp_path: Path) -> None:
    flow = _flow(
        tmp_path,
        f"""\
        numbers = source f.numbers(10)
        numbers | map f.crash_once("{tmp_path}", -1) | sink text.write_lines(out)
        """,
    )

    result = _reflowc("run", "-v", "--processes", str(flow))

    assert result.returncode == 0, result.stderr
    starts = sorted(
        line for line in result.stderr.splitlines() if "job `procs` starts" in line
    )
    assert starts == [
        "INFO [worker procs/line6/map] reflow_lang.runtime.job: job `procs` starts: "
        "1 stages in 1 workers",
        "INFO [worker procs/line6/sink] reflow_lang.runtime.job: job `procs` starts: "
        "1 stages in 1 workers",
        "INFO [worker procs/numbers] reflow_lang.runtime.job: job `procs` starts: "
        "1 stages in 1 workers",
    ]


def test_serve_ends_interrupted_when_a_worker_stopped_the_sources(
    tmp_path: Path,
) -> None:
    flow = _flow(
        tmp_path,
        f"""\
        numbers = source f.slow_numbers("{tmp_path}")
        numbers | sink text.write_lines(out)
        """,
    )
    server = _start("serve", str(flow), "--bind", "tcp://127.0.0.1:0")
    try:
        assert server.stdout is not None
        endpoint = server.stdout.readline().strip()
        connect = ["-q", str(flow), "--connect", endpoint]
        source = _start("worker", *connect, "--stage", "numbers")
        sink = _start("worker", *connect, "--stage", "line6/sink")
        _wait_for(tmp_path / "out.txt", sink)  # the job runs
        source.send_signal(signal.SIGINT)
        _, source_err = source.communicate(timeout=DEADLINE)
        _, sink_err = sink.communicate(timeout=DEADLINE)
        _, server_err = server.communicate(timeout=DEADLINE)
    finally:
        for process in (server, source, sink):
            process.kill()

    assert (source.returncode, source_err) == (130, "")
    assert (sink.returncode, sink_err) == (0, "")
    assert server.returncode == 130
    assert re.fullmatch(
        rf"serving the queues of flow `procs` at {re.escape(endpoint)}\n"
        rf"flow `procs` was stopped early by worker procs/numbers \(pid {source.pid} "
        r"on \S+\): a Ctrl-C or SIGTERM ended its sources, and what they had read was "
        r"drained\n",
        server_err,
    )
    written = (tmp_path / "out.txt").read_text().split()
    assert written == [str(n) for n in range(len(written))]


def test_processes_second_ctrl_c_kills_at_once_without_a_warning(
    tmp_path: Path,
) -> None:
    flow = _flow(
        tmp_path,
        f"""\
        numbers = source f.slow_numbers("{tmp_path}")
        numbers
            | map f.held_until_released("{tmp_path}")
            | sink text.write_lines(out)
        """,
    )
    # Every warning an error, in the supervisor and its children.
    run = ("run", "-v", "--processes", "--color", "never", str(flow))
    job = _start(*run, env={"PYTHONWARNINGS": "error"})
    try:
        _wait_for(tmp_path / "started", job)
        children = _children(job.pid)
        job.send_signal(signal.SIGINT)
        # The map holds what it read: the job cannot drain, and waits for the
        # second Ctrl-C, sent once the first was handled (two pending are one).
        assert job.stderr is not None
        said = []
        while not said or "stopping: the sources end" not in said[-1]:
            said.append(job.stderr.readline())
            assert said[-1], "".join(said)
        job.send_signal(signal.SIGINT)
        _, err = job.communicate(timeout=DEADLINE)
    finally:
        job.kill()

    err = "".join(said) + err
    assert job.returncode == 130, err
    assert "\nflow procs: aborted in " in err
    assert "Unknown child process" not in err
    assert "Warning" not in err
    assert [pid for pid in children if _alive(pid)] == []
