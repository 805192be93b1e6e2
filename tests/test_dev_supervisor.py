"""The dev platform's process supervisor (aforo.devserver.supervisor), run for real: a supervisor
process over tiny Procfiles of `python -c` commands, its output read line by line. Backoff and
grace are shortened so the whole module takes a few seconds."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aforo.devserver.procfile import ProcfileError, command_for_shell, procfile_parse
from aforo.devserver.supervisor import RestartPolicy, main, quick_exits_next, restart_delay
from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--backoff-initial", "0.1", "--backoff-max", "0.4", "--backoff-reset", "60", "--grace", "1"]
LINE = re.compile(r"^(?P<time>\d\d:\d\d:\d\d) (?P<name>\S+) *\| (?P<text>.*)$")


def procfile_line(name: str, code: str) -> str:
    return f"{name}: {shlex.quote(sys.executable)} -c {shlex.quote(code)}"


class SupervisorRun:
    """One supervisor process; its stdout collected by a thread so the test can poll it."""

    def __init__(self, *, directory: Path, procfile: str, arguments: list[str]) -> None:
        path = directory / "Procfile"
        path.write_text(procfile + "\n")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "aforo.devserver.supervisor", "-f", str(path), "--env-file", "", *arguments],
            cwd=directory,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"},
        )
        self.output: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for raw_line in self.process.stdout:
            self.output.append(raw_line.decode().rstrip("\n"))

    def texts(self, name: str) -> list[str]:
        """What `name` printed (the supervisor's own lines are `system`'s), prefix removed."""
        matches = [LINE.match(line) for line in list(self.output)]
        return [match["text"] for match in matches if match and match["name"] == name]

    def seen(self, name: str, predicate: Callable[[str], bool], *, count: int = 1) -> list[str]:
        """The lines of `name` matching `predicate` once there are `count` of them, else []."""
        found = [text for text in self.texts(name) if predicate(text)]
        return found if len(found) >= count else []

    def stop(self) -> int:
        """SIGTERM, as scripts/dev's Ctrl-C (SIGINT) or a `kill` would; the supervisor's exit code."""
        self.process.send_signal(signal.SIGTERM)
        try:
            returncode = self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        self.reader.join(timeout=5)
        return returncode


@pytest.fixture
def supervise(tmp_path) -> Iterator[Callable[..., SupervisorRun]]:
    runs: list[SupervisorRun] = []

    def start(procfile: str, *arguments: str) -> SupervisorRun:
        run = SupervisorRun(directory=tmp_path, procfile=procfile, arguments=[*FAST, *arguments])
        runs.append(run)
        return run

    yield start
    for run in runs:  # a failed test must not leave its processes behind
        if run.process.poll() is None:
            run.stop()


def running(pid: int) -> bool:
    """Alive and not a zombie: a zombie whose reaper is a PID 1 that never reaps counts as gone."""
    stat = Path(f"/proc/{pid}/stat")
    if Path("/proc/self/stat").exists():
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except FileNotFoundError:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_crashing_process_is_restarted_with_doubling_backoff_while_the_others_keep_running(supervise):
    run = supervise(
        "\n".join(
            [
                procfile_line(
                    "steady", "import os, signal; print('steady up', os.getpid(), flush=True); signal.pause()"
                ),
                procfile_line("crasher", "import sys; print('crasher up', flush=True); sys.exit(70)"),
            ]
        )
    )
    wait_for(lambda: run.texts("steady"), timeout=15, message="steady up")
    exits = wait_for(
        lambda: run.seen("system", lambda text: text.startswith("crasher exited"), count=4),
        timeout=15,
        message="four crasher exits",
    )
    assert exits[:4] == [
        "crasher exited with code 70; restarting in 0.1 s (restart #1)",
        "crasher exited with code 70; restarting in 0.2 s (restart #2)",
        "crasher exited with code 70; restarting in 0.4 s (restart #3)",
        "crasher exited with code 70; restarting in 0.4 s (restart #4)",  # capped by --backoff-max
    ]
    assert run.texts("crasher").count("crasher up") >= 4
    # The other process was started once and was never touched; being one simple command, it
    # was exec-ed: the pid the supervisor reports is the program's own, not a shell's.
    [steady] = run.texts("steady")
    assert running(int(steady.split()[-1]))
    assert f"steady started (pid {steady.split()[-1]})" in run.texts("system")
    assert not [text for text in run.texts("system") if text.startswith("steady") and "started" not in text]
    assert run.stop() == 0


def test_backoff_doubles_up_to_its_cap_and_resets_after_a_long_enough_run():
    policy = RestartPolicy(backoff_initial_s=1, backoff_max_s=30, backoff_reset_after_s=60)
    quick_exits, delays = 0, []
    for uptime_s in [0.5, 3, 10, 59, 1, 2, 0]:
        quick_exits = quick_exits_next(previous=quick_exits, uptime_s=uptime_s, policy=policy)
        delays.append(restart_delay(quick_exits=quick_exits, policy=policy))
    assert delays == [1, 2, 4, 8, 16, 30, 30]
    quick_exits = quick_exits_next(previous=quick_exits, uptime_s=60, policy=policy)
    assert restart_delay(quick_exits=quick_exits, policy=policy) == 1


def test_a_oneshot_that_exits_0_is_not_restarted_but_one_that_fails_is(supervise):
    run = supervise(
        "\n".join(
            [
                "# oneshot: once flaky",
                procfile_line("once", "print('once ran')"),
                procfile_line("flaky", "import sys; sys.exit(3)"),
                procfile_line("steady", "import signal; signal.pause()"),
            ]
        )
    )
    # Two restarts of `flaky` take longer than `once` would have waited for its first restart.
    wait_for(
        lambda: run.seen("system", lambda text: text == "flaky exited with code 3; restarting in 0.2 s (restart #2)"),
        timeout=15,
        message="flaky restarted twice",
    )
    assert run.texts("once") == ["once ran"]
    once_lines = [text for text in run.texts("system") if text.startswith("once")]
    assert once_lines[1:] == ["once finished (one-shot: not restarted)"]
    assert run.stop() == 0


def test_a_memory_only_process_restart_is_logged_as_a_warning_that_its_data_is_gone(supervise):
    run = supervise("\n".join(["# memory-only: store", procfile_line("store", "import sys; sys.exit(1)")]))
    wait_for(lambda: run.seen("system", lambda text: "restart #2" in text, count=2), timeout=15, message="two restarts")
    system = run.texts("system")
    warnings = [text for text in system if text.startswith("WARNING: store")]
    assert len(warnings) >= 2 and "memory only" in warnings[0] and "lost" in warnings[0]
    # Each warning follows the restart it is about; the first start warns of nothing.
    assert system[system.index(warnings[0]) - 1].startswith("store restarted (pid ")
    assert not system[0].startswith("WARNING")
    assert run.stop() == 0


def test_sigterm_stops_every_process_group_including_grandchildren_and_exits_0(supervise):
    # The grandchild ignores SIGTERM, and its parent (the group's leader) dies of it: the group
    # outlives its leader, and only the SIGKILL after the grace period ends it.
    grandchild = (
        "import os, signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('grandchild', os.getpid(), flush=True); signal.pause()"
    )
    parent = f"import subprocess, sys, signal; subprocess.Popen([sys.executable, '-c', {grandchild!r}]); signal.pause()"
    run = supervise(
        "\n".join(
            [
                procfile_line("parent", parent),
                procfile_line("steady", "import os, signal; print('steady', os.getpid(), flush=True); signal.pause()"),
            ]
        ),
        "--grace",
        "0.5",
    )

    def both_ready() -> list[int]:
        texts = run.texts("parent") + run.texts("steady")  # "grandchild <pid>", "steady <pid>"
        return [int(text.split()[-1]) for text in texts] if len(texts) == 2 else []

    pids = wait_for(both_ready, timeout=15, message="the grandchild and the steady process running")
    leaders = [int(text.split("pid ")[1].rstrip(")")) for text in run.texts("system") if "started (pid" in text]
    assert all(running(pid) for pid in pids + leaders)
    assert run.stop() == 0
    assert not [pid for pid in pids + leaders if running(pid)]
    system = run.texts("system")
    assert system[-2:] == ["still running: parent; sending SIGKILL", "all processes stopped"]
    assert any(text.startswith("SIGTERM received: stopping parent, steady") for text in system)


def test_output_lines_are_prefixed_and_the_supervisor_ends_when_only_finished_oneshots_remain(supervise):
    run = supervise(
        "\n".join(
            [
                "# oneshot: a longer_name",
                procfile_line(
                    "a",
                    "import sys; print('hello from a'); print('on stderr', file=sys.stderr); "
                    "sys.stdout.write('no newline at the end')",
                ),
                procfile_line("longer_name", "print('hi')"),
            ]
        )
    )
    assert run.process.wait(timeout=15) == 0  # nothing left to run: it stops by itself
    run.reader.join(timeout=5)
    assert all(LINE.match(line) for line in run.output), run.output
    assert "\x1b" not in "".join(run.output)  # colour only on a terminal
    pad = len("longer_name")  # the longest name sets the width; `system` is shorter
    assert any(re.fullmatch(rf"\d\d:\d\d:\d\d {'a'.ljust(pad)} \| hello from a", line) for line in run.output)
    started = rf"\d\d:\d\d:\d\d {'system'.ljust(pad)} \| a started \(pid \d+\)"
    assert any(re.fullmatch(started, line) for line in run.output)
    assert sorted(run.texts("a")) == ["hello from a", "no newline at the end", "on stderr"]
    assert run.texts("longer_name") == ["hi"]
    assert run.texts("system")[-2:] == ["every process has finished", "all processes stopped"]


def test_a_procfile_or_process_name_it_cannot_run_exits_2_with_one_line(tmp_path, capsys):
    procfile = tmp_path / "Procfile"
    procfile.write_text("# oneshot: bannr\nbanner: echo hi\n")
    with pytest.raises(ProcfileError, match="line 1: 'oneshot:' names unknown process 'bannr'"):
        procfile_parse(text=procfile.read_text())
    assert main(["-f", str(procfile)]) == 2
    procfile.write_text("# oneshot: banner\nbanner: echo hi\n")
    assert main(["-f", str(procfile), "web"]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert errors == [
        f"supervisor: {procfile}: line 1: 'oneshot:' names unknown process 'bannr'",
        f"supervisor: no process web in {procfile} (it has banner)",
    ]
    assert [spec.oneshot for spec in procfile_parse(text=procfile.read_text())] == [True]


def test_one_simple_command_is_execed_and_anything_else_runs_as_written():
    assert command_for_shell(command="gunicorn aforo.wsgi --bind 127.0.0.1:${WEB_PORT:-8000}") == (
        "exec gunicorn aforo.wsgi --bind 127.0.0.1:${WEB_PORT:-8000}"
    )
    assert command_for_shell(command="python -c 'import sys; sys.exit(3)'").startswith("exec python")
    compound = ["echo a; echo b", "a | b", "a && b", "sleep 9 &", "FOO=1 python x", "if true; then x; fi", "echo 'a"]
    for command in compound:
        assert command_for_shell(command=command) == command
