"""The chaos benchmark's report: the setup it ran on, each fault's recovery, the API's answers, the
audit of the ledger against what the API promised, verify_ledger, and what the platform logged."""

from __future__ import annotations

import os
import platform
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bench.chaos.faults import Fault, describe_fault
from bench.chaos.ledger import Ledger
from bench.chaos.load import EventBook, Load, Responses
from bench.chaos.platform import (
    BOOTSTRAP,
    DATABASE,
    METRICS,
    PARTITIONS,
    PG_PROXY_PORT,
    REDIS_CACHE_DB,
    REDIS_CELERY_DB,
    REDIS_PROXY_PORT,
    Platform,
    manage,
    now,
    platform_env,
)


def counts_text(counts: Counter) -> str:
    return ", ".join(f"{label}: {n:,}" for label, n in sorted(counts.items())) or "none"


def signed(value: Decimal | int) -> str:
    return f"{'+' if value >= 0 else ''}{Decimal(value).normalize():,f}"


@dataclass(frozen=True)
class EventAudit:
    """The ledger read against the event book: what the Events section prints and checks."""

    rows: list[tuple]  # (event id, quantity, rated) per stored raw event
    stored: Counter  # event id -> raw rows
    rated_count: int
    rated_twice: int  # raw events rated more than once
    rated_units: Decimal  # sum of the rated quantities
    total_units: Decimal  # sum of the running totals' units
    unmatched: int
    promised: set[str]
    accepted: set[str]
    lost: set[str]
    twice_stored: int
    strangers: set[str]  # stored, never sent
    altered: int  # stored with another quantity than sent
    expected_units: int  # the stored and rated events' quantities as sent


def event_audit(book: EventBook, ledger: Ledger) -> EventAudit:
    rows = ledger.rows("""SELECT e.event_id, e.quantity, r.id IS NOT NULL FROM metering_rawevent e
                          LEFT JOIN billing_ratedevent r ON r.raw_event_id = e.id WHERE e.tenant_id = %(tenant)s""")
    stored = Counter(row[0] for row in rows)
    rated_ids = {row[0] for row in rows if row[2]}
    rated_count = ledger.rated_count()
    rated_twice = ledger.scalar("""SELECT count(*) FROM (SELECT raw_event_id FROM billing_ratedevent
                                   WHERE tenant_id = %(tenant)s GROUP BY 1 HAVING count(*) > 1) x""")
    tenant = "WHERE tenant_id = %(tenant)s"
    rated_units = ledger.scalar(f"SELECT COALESCE(sum(quantity), 0) FROM billing_ratedevent {tenant}")
    total_units = ledger.scalar(f"SELECT COALESCE(sum(units), 0) FROM billing_runningtotal {tenant}")
    unmatched = ledger.scalar("SELECT count(*) FROM metering_unmatchedusage WHERE tenant_id = %(tenant)s")
    promised = book.promised()
    accepted = {i for i, n in book.accepted_answers.items() if n}
    altered = sum(1 for event_id, quantity, _ in rows
                  if event_id in book.quantity and Decimal(book.quantity[event_id]) != quantity)
    return EventAudit(
        rows=rows, stored=stored, rated_count=rated_count, rated_twice=rated_twice, rated_units=rated_units,
        total_units=total_units, unmatched=unmatched, promised=promised, accepted=accepted,
        lost=promised - set(stored), twice_stored=sum(1 for n in stored.values() if n > 1),
        strangers=set(stored) - set(book.payloads), altered=altered,
        expected_units=sum(book.quantity[i] for i in rated_ids if i in book.quantity),
    )


class Report:
    """The audit and the figures. Every check that fails adds a line to `failures`."""

    def __init__(self, args, platform_: Platform, load: Load, book: EventBook, ledger: Ledger, responses: Responses,
                 faults: list[Fault], setup: dict[str, Any], drained: tuple[bool, float, int, str]):
        self.args, self.platform, self.load, self.book, self.ledger = args, platform_, load, book, ledger
        self.responses, self.faults, self.setup, self.drained = responses, faults, setup, drained
        self.failures: list[str] = []

    def print(self) -> list[str]:
        print()
        print("Aforo chaos benchmark: HTTP ingest -> rated ledger under faults (issue 11)")
        self.print_setup()
        self.print_faults()
        self.print_answers()
        self.print_events()
        self.print_verify()
        self.print_logs()
        print()
        print("RESULT: " + ("PASS" if not self.failures else "FAIL — " + "; ".join(self.failures)))
        return self.failures

    def print_setup(self) -> None:
        args, load, book = self.args, self.load, self.book
        after = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"  machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
              f"load average before {self.setup['load_before']}, after {after}")
        print(f"  platform (setup {self.setup['setup_s']:.0f}s): database {DATABASE}, seed_demo tenant "
              f"{self.setup['tenant_id']} ({len(book.senders) // len(METRICS)} API keys x {len(METRICS)} metrics); "
              f"Redis db {REDIS_CACHE_DB}/{REDIS_CELERY_DB}, prefix aforo-chaos; Tansu {BOOTSTRAP}, {PARTITIONS} "
              f"partitions; web `{' '.join(self.platform.web_command[2:])}`; {args.consumers} usage consumer(s); "
              f"PostgreSQL via proxy :{PG_PROXY_PORT}, Redis via :{REDIS_PROXY_PORT}")
        actual = (load.finished_at or now()) - load.started
        print(f"  load: {args.events:,} events at {args.rate:,.0f} events/s, batches of {args.batch}, {args.clients} "
              f"client threads, {load.requests:,} requests; {load.planned_s:.0f}s planned, {actual:.0f}s actual "
              f"({load.shift:.1f}s paused); the warm-up event was stored {self.setup['warmup_s']:.1f}s after the web "
              f"was up")
        print(f"  faults: {len(self.faults)}, at offered-event marks {', '.join(f'{f.mark:,}' for f in self.faults)}; "
              f"cuts {args.cut_seconds:g}s; recovery timeout {args.recovery_timeout:.0f}s; duplicate flood "
              f"{args.flood:,} alone + {args.flood // 3:,} mixed")

    def print_faults(self) -> None:
        print()
        print("Faults (t: seconds since the load started; recovery from the fault's end):")
        for fault in self.faults:
            when = f"t={fault.started - self.load.started:5.1f}s" if fault.started else "t=    -"
            late = " [after the load ended]" if fault.after_load else ""
            print(f"  {when}  {fault.label:<22} {describe_fault(fault, self.args.recovery_timeout)}{late}")
            for note in [*(fault.notes if fault.recovery else []), *fault.remedies]:
                print(f"  {'':9}  {'':22} {note}")
            if fault.started is not None:
                window = self.responses.counts(since=fault.started, until=fault.window_end or now(),
                                               sources=("load", "probe"))
                other = Counter({label: n for label, n in window.items() if label != "202"})
                if other:
                    print(f"  {'':9}  {'':22} answers other than 202 meanwhile: {counts_text(other)}")
            if fault.recovery is not None and not fault.recovery.healed():
                stuck = "ingest" if fault.recovery.ingest is None else "the consumer"
                self.failures.append(f"{fault.label}: {stuck} did not recover in {self.args.recovery_timeout:.0f}s")
        if self.book.flood_answers:
            print(f"  duplicate flood, the re-sent events' answers: {counts_text(self.book.flood_answers)}")

    def print_answers(self) -> None:
        counts = self.responses.counts()
        server_errors = Counter({label: n for label, n in counts.items() if label[:1] == "5"})
        five_hundreds = sum(n for label, n in counts.items() if label.startswith("500"))
        unanswered = ("connection dropped", "connection timed")
        dropped = sum(n for label, n in counts.items() if label.startswith(unanswered))
        during_remedies = sum(n for since, until in self.responses.remedy_windows
                              for label, n in self.responses.counts(since=since, until=until).items()
                              if label.startswith(unanswered))
        print()
        print("HTTP answers (every attempt):")
        for source in ("load", "probe", "flood"):
            if source_counts := self.responses.counts(sources=(source,)):
                print(f"  {source:<6} {counts_text(source_counts)}")
        excused = f" ({during_remedies:,} while the bench itself restarted the web)" if during_remedies else ""
        print(f"  5xx: {counts_text(server_errors)}; 500s: {five_hundreds:,}; "
              f"dropped or unanswered connections: {dropped:,}{excused}")
        for body in self.responses.server_errors:
            print(f"    a 500 said: {body}")
        if five_hundreds:
            self.failures.append(f"{five_hundreds:,} answers 500")
        if dropped - during_remedies:
            self.failures.append(f"{dropped - during_remedies:,} connections dropped or unanswered")

    def print_events(self) -> None:
        book, audit = self.book, event_audit(self.book, self.ledger)
        promised, accepted, stored = audit.promised, audit.accepted, audit.stored
        load_ids = len(book.payloads) - len(book.probes)
        probes_accepted = len(accepted & book.probes)
        print()
        print("Events:")
        print(f"  offered              {load_ids:,} load events, {self.load.issued:,} of {self.args.events:,} issued "
              f"(+ {len(book.probes)} probe events)")
        print(f"  accepted             {len(accepted) - probes_accepted:,} load + {probes_accepted} probe events "
              f"answered 'accepted'; {sum(n - 1 for n in book.accepted_answers.values() if n > 1):,} of them "
              f"accepted more than once")
        print(f"  duplicates reported  {sum(book.duplicate_reasons.values()):,} answers "
              f"({counts_text(book.duplicate_reasons)}); {len(promised - accepted):,} events only ever answered "
              f"duplicate (an unanswered attempt had got in)")
        print(f"  rejected, given up   {sum(book.rejected.values()):,} rejected ({counts_text(book.rejected)}); "
              f"{len(book.abandoned - book.probes):,} load + {len(book.abandoned & book.probes)} probe events given "
              f"up at their deadline, {len(book.abandoned & set(stored)):,} of them stored anyway")
        self._print_ledger_side(audit)
        self._judge_events(audit)

    def _print_ledger_side(self, audit: EventAudit) -> None:
        """The Events lines on what the ledger holds: stored, rated, quantities, LOST, DOUBLE-COUNTED."""
        book, lost, accepted = self.book, audit.lost, audit.accepted
        expected_units, rated_units, total_units = audit.expected_units, audit.rated_units, audit.total_units
        drained, drain_s, behind, offsets = self.drained
        print(f"  stored raw events    {len(audit.rows):,} ({len(audit.stored):,} event ids; {len(audit.strangers):,} "
              f"never sent; {audit.altered:,} with another quantity than sent)")
        print(f"  rated events         {audit.rated_count:,} ({audit.unmatched:,} unmatched usage rows)")
        print(f"  quantities           promised {sum(book.quantity[i] for i in audit.promised):,}; stored and rated, "
              f"as sent {expected_units:,}; sum of rated quantities {Decimal(rated_units).normalize():,f}; running "
              f"totals' units {Decimal(total_units).normalize():,f}")
        print(f"  consumer caught up   {'yes' if drained else 'NO'}, {drain_s:.1f}s after the load "
              f"({behind:,} promised events not stored); usage topic: {offsets}")
        print(f"  LOST                 {len(lost):,} promised events not in the raw ledger ({len(lost & accepted):,} "
              f"answered accepted, {len(lost - accepted):,} only duplicate)"
              + ("" if drained or not lost else "; the consumer never caught up: they may still be in the broker"))
        print(f"  DOUBLE-COUNTED       {audit.twice_stored:,} event ids stored twice, {audit.rated_twice:,} raw events "
              f"rated twice; running totals {signed(total_units - expected_units)} units and rated quantities "
              f"{signed(rated_units - expected_units)} against the stored events' quantities as sent")

    def _judge_events(self, audit: EventAudit) -> None:
        drained, _, behind, offsets = self.drained
        expected_units = audit.expected_units
        if audit.lost:
            self.failures.append(f"{len(audit.lost):,} promised events not in the ledger")
        if (audit.twice_stored or audit.rated_twice or audit.total_units != expected_units
                or audit.rated_units != expected_units):
            self.failures.append("units double-counted (or missing)")
        if audit.altered or audit.strangers:
            self.failures.append(f"{audit.altered} events stored with another quantity, "
                                 f"{len(audit.strangers)} never sent")
        if not drained:
            self.failures.append(f"the consumer had not caught up {self.args.drain_timeout:.0f}s after the load "
                                 f"({behind:,} promised events not stored; {offsets})")

    def print_verify(self) -> None:
        verify = manage(["verify_ledger"], env=platform_env(proxied=False, verbose=False), timeout_s=300)
        lines = (verify.stdout + verify.stderr).strip().splitlines() or ["(no output)"]
        print()
        print(f"verify_ledger (exit {verify.returncode}): {lines[-1]}")
        for line in lines[:-1][:15]:
            print(f"  {line}")
        if verify.returncode != 0:
            self.failures.append("verify_ledger failed")

    def print_logs(self) -> None:
        print()
        for at, name, code in self.platform.unexpected_exits:
            print(f"  t={at:5.1f}s after setup: {name} exited by itself (code {code}), restarted as by a supervisor")
        print("Errors the platform logged (count, message with digits as #):")
        with self.platform.tally.lock:
            for process, counter in sorted(self.platform.tally.lines.items()):
                for message, n in counter.most_common(self.args.log_lines):
                    print(f"  {process:<8} {n:>5,}  {message}")
                if len(counter) > self.args.log_lines:
                    print(f"  {process:<8} {'':>5}  … and {len(counter) - self.args.log_lines} other messages")
        print(f"  full logs: {self.platform.log_dir}")
