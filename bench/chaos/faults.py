"""The chaos benchmark's faults: the plan (marks over the load), the orchestration that breaks one
thing at a time, and the measured recovery of ingest, the rated ledger and the committed offsets."""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from dataclasses import dataclass, field

from bench.chaos.ledger import Ledger, Offsets
from bench.chaos.load import EventBook, Load, wait_web
from bench.chaos.platform import Platform, now, topics_create


@dataclass
class Recovery:
    """Seconds from a fault's end until each part worked again; None: not within the timeout."""

    ingest: float | None = None
    rated: float | None = None
    committed: float | None = None

    def healed(self) -> bool:
        return None not in (self.ingest, self.rated, self.committed)

    def describe(self, timeout_s: float) -> str:
        def part(seconds: float | None) -> str:
            if seconds is not None:
                return f"+{seconds:.1f}s"
            if self.ingest is None:  # nothing new got in: the consumer's side cannot be judged
                return "not judged (nothing new got in)"
            return f"did not recover in {timeout_s:.0f}s"

        ingest = f"+{self.ingest:.1f}s" if self.ingest is not None else f"did not recover in {timeout_s:.0f}s"
        return (f"ingest 202 again {ingest}; rated ledger moving again {part(self.rated)}; "
                f"offsets committed again {part(self.committed)}")


@dataclass
class Fault:
    kind: str
    label: str
    mark: int  # offered events before it starts
    started: float | None = None
    ended: float | None = None
    window_end: float | None = None
    recovery: Recovery | None = None
    notes: list[str] = field(default_factory=list)
    remedies: list[str] = field(default_factory=list)
    after_load: bool = False
    skipped: str = ""


def fault_plan(args: argparse.Namespace) -> list[Fault]:
    """Consumer kills interleaved with the other faults; the broker restart last, so that a
    platform it breaks does not hide what the others show. Marks spread over 5%..85% of the load."""
    others = [("postgres", f"PostgreSQL cut {args.cut_seconds:g}s"), ("flood", "duplicate flood"),
              ("redis", f"Redis cut {args.cut_seconds:g}s")]
    plan: list[tuple[str, str]] = []
    for kill in range(1, max(args.kills, len(others)) + 1):
        if kill <= args.kills:
            plan.append(("kill", f"consumer SIGKILL #{kill}"))
        if others:
            plan.append(others.pop(0))
    if not args.no_broker_restart:
        plan.append(("broker", "broker restart"))
    spread = [0.05 + 0.8 * n / max(1, len(plan) - 1) for n in range(len(plan))]
    return [Fault(kind, label, int(args.events * at)) for (kind, label), at in zip(plan, spread, strict=True)]


class Chaos:
    def __init__(self, args: argparse.Namespace, platform_: Platform, load: Load, book: EventBook, ledger: Ledger,
                 offsets: Offsets):
        self.args, self.platform, self.load, self.book, self.ledger, self.offsets = (
            args, platform_, load, book, ledger, offsets)
        self.probes = 0

    def log(self, message: str) -> None:
        print(f"[{now() - self.load.started:6.1f}s] {message}", file=sys.stderr, flush=True)

    def run(self, faults: list[Fault]) -> None:
        last_done = now()
        for fault in faults:
            while self.load.issued < fault.mark and self.load.active():
                time.sleep(0.1)
            while now() - last_done < self.args.fault_gap:
                time.sleep(0.1)
            if now() > self.load.deadline:
                fault.skipped = "the load's deadline had passed"
                continue
            fault.after_load, fault.started = not self.load.active(), now()
            self.log(f"fault: {fault.label}")
            getattr(self, f"fault_{fault.kind}")(fault)
            if fault.ended is not None:
                self.recover(fault)
            fault.window_end = last_done = now()
            self.log(f"  {fault.label}: {describe_fault(fault, self.args.recovery_timeout)}")
            for remedy in fault.remedies:
                self.log(f"  {fault.label}: {remedy}")

    def fault_kill(self, fault: Fault) -> None:
        number = int(fault.label.rsplit("#", 1)[1])
        target = self.platform.consumers[(number - 1) % len(self.platform.consumers)]
        with target.lock:
            target.kill()
            target.start()
        fault.ended = now()
        fault.notes.append(f"{target.name} killed and started again in {fault.ended - fault.started:.2f}s")

    def _cut(self, fault: Fault, service: str) -> None:
        reply = self.platform.proxy_command(f"cut {service}")
        cut_at = now()
        while now() - cut_at < self.args.cut_seconds:
            time.sleep(0.05)
        self.platform.proxy_command(f"restore {service}")
        fault.ended = now()
        fault.notes.append(f"{reply.split()[-1]} connections dropped, new ones refused for {fault.ended - cut_at:.1f}s")

    def fault_postgres(self, fault: Fault) -> None:
        self._cut(fault, "postgres")

    def fault_redis(self, fault: Fault) -> None:
        self._cut(fault, "redis")

    def fault_flood(self, fault: Fault) -> None:
        """Re-send accepted events, alone (100 a batch, plus one repeated within the batch), then
        queue a third as many to be mixed into the load's new batches. Not an outage: no recovery."""
        accepted = self.book.accepted_ids()
        rng = random.Random(self.args.seed + 1)
        alone = rng.sample(accepted, min(self.args.flood, len(accepted)))
        rest = sorted(set(accepted) - set(alone))
        mixed = rng.sample(rest, min(self.args.flood // 3, len(rest)))
        with self.book.lock:
            self.book.flood_alone.update(alone)
            self.book.flood_mixed.update(mixed)
        deadline = now() + 60
        for start in range(0, len(alone), 100):
            chunk = alone[start : start + 100]
            self.load.send([*chunk, chunk[0]], "flood", deadline_fn=lambda: deadline)
        with self.load.cond:
            self.book.mix_queue.extend(mixed)
        fault.notes.append(
            f"{len(alone):,} accepted events re-sent alone in {now() - fault.started:.1f}s (100 a batch + 1 repeat); "
            f"{len(mixed):,} queued to be mixed into the load's new batches, {self.args.mix_per_batch} a batch"
        )

    def fault_broker(self, fault: Fault) -> None:
        if not self.load.pause():
            fault.notes.append("requests still in flight after 45 s; restarting anyway")
        paused_at = now()
        behind = self.unstored()
        while behind and now() - paused_at < self.args.catch_up_timeout:
            time.sleep(0.5)
            behind = self.unstored()
        if behind:
            self.load.resume()
            fault.skipped = (f"the consumer had not stored {len(behind):,} promised events after "
                             f"{self.args.catch_up_timeout:.0f}s (restarting the memory broker would lose them)")
            return
        fault.notes.append(f"load paused; every promised event stored {now() - paused_at:.1f}s later")
        killed_at = now()
        with self.platform.broker.lock:
            self.platform.broker.kill()
            self.platform.broker.start()
        try:
            topics = topics_create(wait_s=30)
            fault.notes.append(f"broker killed, started and topics re-created in {now() - killed_at:.1f}s ({topics})")
        except Exception as error:  # noqa: BLE001 - reported; the recovery says the rest
            fault.notes.append(f"topics not re-created: {error}")
        fault.ended = now()
        self.load.resume()

    def unstored(self) -> set[str]:
        return self.book.promised() - self.ledger.stored_ids()

    def recover(self, fault: Fault) -> None:
        """Measure the recovery; if a part did not recover, restart what an operator would (the
        web if ingest is stuck, else the consumers) and measure again, at most twice."""
        fault.recovery = recovery = self.measure(fault.ended)
        for _ in range(0 if self.args.no_remedy else 2):
            if recovery.healed():
                break
            targets = [self.platform.web] if recovery.ingest is None else self.platform.consumers
            names = " and ".join(t.name for t in targets)
            self.log(f"  {fault.label}: {recovery.describe(self.args.recovery_timeout)}; restarting {names}")
            restarted = now()
            for target in targets:
                with target.lock:
                    target.stop(grace_s=12)  # past gunicorn's graceful timeout: requests in flight finish
                    target.start()
            if self.platform.web in targets:
                try:
                    wait_web(self.load.token, timeout_s=60)
                except RuntimeError as error:
                    fault.remedies.append(f"restarted {names}: {error}")
                    break
                finally:
                    self.load.responses.remedy_windows.append((restarted, now()))
            took = now() - restarted
            recovery = self.measure(now())
            described = recovery.describe(self.args.recovery_timeout)
            fault.remedies.append(f"then restarted {names} (took {took:.1f}s): {described}")

    def measure(self, end: float) -> Recovery:
        deadline = end + self.args.recovery_timeout
        rated_from = self.ledger.rated_count()
        committed_from = self.offsets.committed() or 0
        self.probes += 1
        probe_id = self.book.new_event(f"{self.book.run_id}-probe-{self.probes}", probe=True)
        recovery = Recovery()

        def probe() -> None:
            answer = self.load.send([probe_id], "probe", deadline_fn=lambda: deadline, gated=False, backoff_cap_s=0.25)
            if answer is not None and answer.status == 202:
                recovery.ingest = answer.at - end

        prober = threading.Thread(target=probe, daemon=True)
        prober.start()
        while now() < deadline and not (recovery.healed() and not prober.is_alive()):
            if recovery.rated is None and self.ledger.rated_count() > rated_from:
                recovery.rated = now() - end
            if recovery.committed is None and (self.offsets.committed() or 0) > committed_from:
                recovery.committed = now() - end
            time.sleep(0.2)
        prober.join(timeout=40)
        return recovery

    def drain(self) -> tuple[bool, float, int, str]:
        """Wait until every promised event is stored and every offset committed (or the deadline)."""
        started = now()
        while True:
            behind = self.unstored()
            read = None if behind else self.offsets.read()
            committed = read is not None and read[0] == read[1]
            if committed or now() - started > self.args.drain_timeout:
                return committed, now() - started, len(behind), self.offsets.describe()
            time.sleep(0.5)


def describe_fault(fault: Fault, timeout_s: float) -> str:
    if fault.skipped:
        return f"SKIPPED: {fault.skipped}"
    if fault.recovery is None:
        return "; ".join(fault.notes)
    return fault.recovery.describe(timeout_s)
