"""Where a process's time goes, stage by stage: the per-stage budget of the usage consumer
(bench/consumer_throughput.py prints it as µs per event).

Each stage is timed per batch, never per event (two clock reads on entry, two on exit): the
thread's CPU time (Python work, encoding) and the wall time, whose excess over the CPU time is
waiting — on PostgreSQL, Redis or the broker. Garbage collection is timed through gc.callbacks.
The consumer publishes the totals in its heartbeat (consumers.health)."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager

_perf = time.perf_counter
_cpu = time.thread_time


class StageClock:
    def __init__(self) -> None:
        self.totals: dict[str, list[float]] = {}  # stage -> [wall s, cpu s, batches]
        self.events = 0
        self._gc_started = 0.0

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        wall, cpu = _perf(), _cpu()
        try:
            yield
        finally:
            total = self.totals.get(name)
            if total is None:
                total = self.totals[name] = [0.0, 0.0, 0]
            total[0] += _perf() - wall
            total[1] += _cpu() - cpu
            total[2] += 1

    def counted(self, events: int) -> None:
        self.events += events

    def _on_gc(self, phase: str, _info: dict) -> None:
        if phase == "start":
            self._gc_started = _perf()
        elif self._gc_started:
            elapsed = _perf() - self._gc_started
            total = self.totals.setdefault("gc", [0.0, 0.0, 0])
            total[0] += elapsed
            total[1] += elapsed
            total[2] += 1

    def snapshot(self) -> dict:
        return {
            "events": self.events,
            "process_cpu_s": round(time.process_time(), 4),
            "stages": {name: {"wall_s": round(w, 4), "cpu_s": round(c, 4), "batches": n} for name, (w, c, n) in self.totals.items()},
        }


clock = StageClock()
gc.callbacks.append(clock._on_gc)
stage = clock.stage
