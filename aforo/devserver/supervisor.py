"""A process supervisor for the one-machine dev platform: runs Procfile processes and keeps them up.

    python -m aforo.devserver.supervisor -f Procfile [--grace 10] [--backoff-initial 1] [NAME ...]

Contracts:
- Every process runs under /bin/sh (`exec`-ed when it is one simple command) in its own session,
  so in its own process group (the group's id is the leader's pid). A group lives and dies with
  its leader: when the leader exits, what is left of its group gets SIGTERM, and SIGKILL before
  the process is started again.
- A process that exits, with any code, is restarted after a backoff that doubles from
  --backoff-initial up to --backoff-max; a process that stayed up --backoff-reset seconds or
  more starts again from the initial delay. One line says so:
  "consumer exited with code 70; restarting in 2 s (restart #3)".
- A `# oneshot:` process (see aforo.devserver.procfile) that exits 0 is done, not restarted; a
  `# memory-only:` process's restart is logged as a warning that its data is gone.
- SIGINT, SIGTERM or SIGHUP: SIGTERM to every group, SIGKILL to what is left after --grace
  seconds (at once on a second signal), then exit 0. When only finished one-shots are left the
  supervisor stops the same way.
- Output: each line of a process's stdout and stderr, prefixed like honcho's
  `HH:MM:SS name | ` (aforo.devserver.output); the supervisor's own lines come from `system`.
- On Linux the supervisor is a child subreaper: a grandchild whose parent died is re-parented
  to it, not to PID 1 (which, in a container, may never reap it), so it is reaped here and an
  emptied group is seen as empty.
- Environment: the supervisor's own, plus the keys it lacks from `.env` (--env-file) when that
  file exists: the environment wins, as in the settings; a Procfile's `${WEB_PORT}` sees a `.env` value.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from aforo.devserver.output import LinePrinter, OutputPipe
from aforo.devserver.procfile import (
    ProcessSpec,
    ProcfileError,
    command_for_shell,
    env_file_parse,
    procfile_parse,
)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PR_SET_CHILD_SUBREAPER = 36
READ_CHUNK = 65536
AFTER_KILL_WAIT_S = 3.0  # after SIGKILL, how long to wait for groups to empty before giving up


@dataclass(frozen=True)
class RestartPolicy:
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0
    backoff_reset_after_s: float = 60.0
    grace_s: float = 10.0


def quick_exits_next(*, previous: int, uptime_s: float, policy: RestartPolicy) -> int:
    """Consecutive quick exits including this one: a run of `backoff_reset_after_s` or longer
    makes this exit the first again."""
    return 1 if uptime_s >= policy.backoff_reset_after_s else previous + 1


def restart_delay(*, quick_exits: int, policy: RestartPolicy) -> float:
    """Seconds before the restart that follows the `quick_exits`-th consecutive quick exit."""
    return min(policy.backoff_initial_s * 2 ** (quick_exits - 1), policy.backoff_max_s)


def exit_description(*, returncode: int) -> str:
    if returncode >= 0:
        return f"exited with code {returncode}"
    try:
        return f"was killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"was killed by signal {-returncode}"


@dataclass
class Managed:
    spec: ProcessSpec
    popen: subprocess.Popen | None = None
    pgid: int | None = None  # the latest incarnation's group, until it is seen empty
    started_at: float = 0.0
    restarts: int = 0
    quick_exits: int = 0
    restart_at: float | None = None  # monotonic time of a pending restart


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def group_signal(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def subreaper_become() -> None:
    """Make orphaned descendants children of this process (Linux); elsewhere PID 1 reaps them."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


class Supervisor:
    def __init__(self, *, specs: list[ProcessSpec], policy: RestartPolicy, env: dict[str, str], printer: LinePrinter):
        self.processes = [Managed(spec=spec) for spec in specs]
        self.policy = policy
        self.env = env
        self.printer = printer
        self.selector = selectors.DefaultSelector()
        self.stop_signals: list[int] = []
        self.stopping_since: float | None = None
        self.stop_signals_seen = 0
        self.killed_at: float | None = None

    def run(self) -> int:
        """Start every process, keep them up until a stop signal, stop them all; returns 0."""
        wakeup_read, wakeup_write = os.pipe()
        os.set_blocking(wakeup_read, False)
        os.set_blocking(wakeup_write, False)
        signal.set_wakeup_fd(wakeup_write, warn_on_full_buffer=False)
        self.selector.register(wakeup_read, selectors.EVENT_READ, None)
        for signum in STOP_SIGNALS:
            signal.signal(signum, lambda signum, frame: self.stop_signals.append(signum))
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # only to wake the select
        subreaper_become()
        for process in self.processes:
            self._spawn(process)
        while not self._finished():
            self._wait_for_events(timeout=self._timeout())
            self._reap()
            self._step()
        self.printer.system("all processes stopped")
        self._drain_output(deadline=time.monotonic() + 1.0)
        return 0

    # --- events -------------------------------------------------------------------------------

    def _timeout(self) -> float:
        now = time.monotonic()
        deadlines = [process.restart_at for process in self.processes if process.restart_at is not None]
        if self.stopping_since is not None:
            # Groups whose members are not our children empty without a SIGCHLD: poll them.
            deadlines.append(now + 0.05)
            if self.killed_at is None:
                deadlines.append(self.stopping_since + self.policy.grace_s)
        return max(0.0, min([now + 1.0, *deadlines]) - now)

    def _wait_for_events(self, *, timeout: float) -> None:
        for key, _ in self.selector.select(timeout):
            if key.data is None:
                try:
                    while os.read(key.fd, 512):
                        pass
                except BlockingIOError:
                    pass
            else:
                self._read_output(key.data)

    def _read_output(self, pipe: OutputPipe) -> None:
        try:
            data = os.read(pipe.file.fileno(), READ_CHUNK)
        except BlockingIOError:
            return
        if not data:
            if pipe.partial:
                self.printer.write(name=pipe.name, lines=[pipe.partial])
            self.selector.unregister(pipe.file)
            pipe.file.close()
            return
        lines = pipe.lines_complete(data=data)
        if lines:
            self.printer.write(name=pipe.name, lines=lines)

    def _drain_output(self, *, deadline: float) -> None:
        """Print what the stopped processes still wrote; a pipe held open past the deadline (by
        a process that left its group) is abandoned."""
        while len(self.selector.get_map()) > 1 and time.monotonic() < deadline:
            self._wait_for_events(timeout=max(0.0, deadline - time.monotonic()))

    def _reap(self) -> None:
        """Collect exited leaders (through their Popen) and adopted orphans (directly)."""
        leaders = {process.popen.pid: process for process in self.processes if process.popen is not None}
        waitid = getattr(os, "waitid", None)
        while waitid is not None:
            try:
                waitable = waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                break
            if waitable is None or waitable.si_pid == 0:
                break
            process = leaders.pop(waitable.si_pid, None)
            if process is None:
                os.waitpid(waitable.si_pid, os.WNOHANG)
            elif process.popen.poll() is not None:
                self._on_exit(process)
            else:
                break
        for process in leaders.values():  # where waitid is missing, and as a safety net
            if process.popen is not None and process.popen.poll() is not None:
                self._on_exit(process)
        for process in self.processes:
            if process.pgid is not None and process.popen is None and not group_alive(process.pgid):
                process.pgid = None

    def _step(self) -> None:
        now = time.monotonic()
        if self.stopping_since is None:
            if self.stop_signals:
                self._stop(reason=f"{signal.Signals(self.stop_signals[0]).name} received")
            elif all(process.popen is None and process.restart_at is None for process in self.processes):
                self._stop(reason="every process has finished")
            else:
                for process in self.processes:
                    if process.restart_at is not None and process.restart_at <= now:
                        self._spawn(process)
            return
        if self.killed_at is None and (
            now >= self.stopping_since + self.policy.grace_s or len(self.stop_signals) > self.stop_signals_seen
        ):
            self._kill_remaining()

    def _finished(self) -> bool:
        if self.stopping_since is None:
            return False
        if self.killed_at is not None and time.monotonic() >= self.killed_at + AFTER_KILL_WAIT_S:
            return True
        return all(process.popen is None and process.pgid is None for process in self.processes)

    # --- process lifecycle --------------------------------------------------------------------

    def _spawn(self, process: Managed) -> None:
        name = process.spec.name
        process.restart_at = None
        if process.pgid is not None:
            group_signal(process.pgid, signal.SIGKILL)  # the previous incarnation's leftovers
        try:
            popen = subprocess.Popen(
                ["/bin/sh", "-c", command_for_shell(command=process.spec.command)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        except OSError as error:  # no fork (out of processes or memory): try again later
            process.started_at = time.monotonic()
            self._restart_schedule(process, what=f"could not start ({error.strerror})")
            return
        os.set_blocking(popen.stdout.fileno(), False)
        self.selector.register(popen.stdout, selectors.EVENT_READ, OutputPipe(name=name, file=popen.stdout))
        process.popen, process.pgid, process.started_at = popen, popen.pid, time.monotonic()
        if process.restarts == 0:
            self.printer.system(f"{name} started (pid {popen.pid})")
            return
        self.printer.system(f"{name} restarted (pid {popen.pid}, restart #{process.restarts})")
        if process.spec.memory_only:
            self.printer.system(
                f"WARNING: {name} keeps its data in memory only: it restarted empty, and everything it held "
                "before is lost (for a broker: its topics, their messages, the committed consumer offsets)"
            )

    def _on_exit(self, process: Managed) -> None:
        name, returncode = process.spec.name, process.popen.returncode
        process.popen = None
        if self.stopping_since is not None:
            self.printer.system(f"{name} {exit_description(returncode=returncode)}")
            return
        if group_alive(process.pgid):
            group_signal(process.pgid, signal.SIGTERM)
            self.printer.system(f"{name}: processes left in its group {process.pgid} after it exited; sent SIGTERM")
        if process.spec.oneshot and returncode == 0:
            self.printer.system(f"{name} finished (one-shot: not restarted)")
            return
        self._restart_schedule(process, what=exit_description(returncode=returncode))

    def _restart_schedule(self, process: Managed, *, what: str) -> None:
        uptime_s = time.monotonic() - process.started_at
        process.quick_exits = quick_exits_next(previous=process.quick_exits, uptime_s=uptime_s, policy=self.policy)
        process.restarts += 1
        delay_s = restart_delay(quick_exits=process.quick_exits, policy=self.policy)
        process.restart_at = time.monotonic() + delay_s
        self.printer.system(f"{process.spec.name} {what}; restarting in {delay_s:g} s (restart #{process.restarts})")

    def _stop(self, *, reason: str) -> None:
        self.stopping_since = time.monotonic()
        self.stop_signals_seen = len(self.stop_signals)
        running = [process for process in self.processes if process.pgid is not None]
        for process in self.processes:
            process.restart_at = None
        names = ", ".join(process.spec.name for process in running)
        self.printer.system(
            f"{reason}: stopping {names} (SIGTERM; SIGKILL after {self.policy.grace_s:g} s or a second signal)"
            if running
            else reason
        )
        for process in running:
            group_signal(process.pgid, signal.SIGTERM)

    def _kill_remaining(self) -> None:
        self.killed_at = time.monotonic()
        remaining = [process for process in self.processes if process.pgid is not None and group_alive(process.pgid)]
        if remaining:
            names = ", ".join(process.spec.name for process in remaining)
            self.printer.system(f"still running: {names}; sending SIGKILL")
        for process in remaining:
            group_signal(process.pgid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m aforo.devserver.supervisor",
        description="Run Procfile processes, restart those that exit (with backoff), stop them all on SIGINT/SIGTERM.",
    )
    parser.add_argument("-f", "--procfile", default="Procfile")
    parser.add_argument("-e", "--env-file", default=".env", help="KEY=value file, if present ('' for none)")
    parser.add_argument("--grace", type=float, default=10.0, help="seconds between SIGTERM and SIGKILL on stop")
    parser.add_argument("--backoff-initial", type=float, default=1.0, help="seconds before the first restart")
    parser.add_argument("--backoff-max", type=float, default=30.0, help="longest delay before a restart")
    parser.add_argument("--backoff-reset", type=float, default=60.0, help="uptime after which the backoff resets")
    parser.add_argument("names", nargs="*", help="processes to run (default: all, in Procfile order)")
    args = parser.parse_args(argv)
    try:
        specs = procfile_parse(text=Path(args.procfile).read_text())
        env_file = Path(args.env_file) if args.env_file else None
        env_values = env_file_parse(text=env_file.read_text()) if env_file and env_file.is_file() else {}
    except OSError as error:
        print(f"supervisor: cannot read {error.filename}: {error.strerror}", file=sys.stderr)
        return 2
    except ProcfileError as error:
        print(f"supervisor: {args.procfile}: {error}", file=sys.stderr)
        return 2
    by_name = {spec.name: spec for spec in specs}
    unknown = [name for name in args.names if name not in by_name]
    if unknown:
        known = ", ".join(by_name)
        print(f"supervisor: no process {', '.join(unknown)} in {args.procfile} (it has {known})", file=sys.stderr)
        return 2
    selected = [by_name[name] for name in dict.fromkeys(args.names)] if args.names else specs
    if not selected:
        print(f"supervisor: {args.procfile} declares no process", file=sys.stderr)
        return 2
    policy = RestartPolicy(
        backoff_initial_s=args.backoff_initial,
        backoff_max_s=args.backoff_max,
        backoff_reset_after_s=args.backoff_reset,
        grace_s=args.grace,
    )
    stream = sys.stdout.buffer
    printer = LinePrinter(
        names=[spec.name for spec in selected], stream=stream, colour=stream.isatty() and "NO_COLOR" not in os.environ
    )
    supervisor = Supervisor(specs=selected, policy=policy, env={**env_values, **os.environ}, printer=printer)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
