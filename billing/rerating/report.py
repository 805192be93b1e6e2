"""A re-rating job's report, pure: the difference per event, per invoice line, per customer and
in total, from the plan's changes (billing.rerating.plan) and the usage lines that billed the old
ratings. Amounts are exact text (the rated ledger's precision); the readable table rounds them to
the currency's minor unit."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, NamedTuple

from aforo.money import money_display
from billing.rating import text

from .plan import Change

ZERO = Decimal(0)
EVENTS_SHOWN = 5000  # changed events kept in the report (the admin's CSV of an applied job reads the ledger)


class BilledLine(NamedTuple):
    """A live usage line of a settled period: the rated ids (from, to] of one key it billed."""

    invoice: str
    position: int
    rated_from_id: int
    rated_to_id: int


class EventFacts(NamedTuple):
    event_id: str
    customer_id: int
    metric: str
    dimension_key: str
    period_start: str
    quantity: Decimal
    currency: str


def _line_of(lines: Sequence[BilledLine], rated_id: int) -> BilledLine | None:
    """The line whose range holds `rated_id` (lines sorted by rated_to_id, ranges disjoint)."""
    i = bisect_left([line.rated_to_id for line in lines], rated_id)
    if i < len(lines) and lines[i].rated_from_id < rated_id <= lines[i].rated_to_id:
        return lines[i]
    return None


class ReratingReport:
    """The report, built a part at a time (a job re-rates its scope in chunks of subscriptions:
    billing.rerating.services) and answered once: `add` each part's changes, then `result`."""

    def __init__(self) -> None:
        self.events = 0
        self.changed = self.removed = 0
        self.per_customer: dict[int, list] = {}
        self.per_line: dict[tuple, list] = {}
        self.shown: list[dict[str, Any]] = []
        self.old_total = self.new_total = ZERO
        self.currencies: set[str] = set()

    def add(
        self, *, changes: Sequence[Change], events: int, facts: Mapping[int, EventFacts],
        lines: Mapping[tuple, Sequence[BilledLine]], line_key: Any,
    ) -> None:
        """`facts`: per raw event id; `lines`: per (key, trial), sorted; `line_key(change)` the
        (key, trial) its old rating was billed under."""
        self.events += events
        self.changed += len(changes)
        for change in changes:
            old = change.old
            fact = facts[old.raw_event_id]
            self.currencies.add(fact.currency)
            new_amount = change.new.amount if change.new is not None else ZERO
            self.removed += change.new is None
            self.old_total += old.amount
            self.new_total += new_amount
            entry = self.per_customer.setdefault(fact.customer_id, [0, ZERO, ZERO])
            entry[0] += 1
            entry[1] += old.amount
            entry[2] += new_amount
            billed = _line_of(lines.get(line_key(change), ()), old.rated_id)
            where = (billed.invoice, billed.position) if billed else (None, None)
            line = self.per_line.setdefault((*where, fact.metric, fact.dimension_key, fact.period_start), [0, ZERO])
            line[0] += 1
            line[1] += change.difference
            if len(self.shown) < EVENTS_SHOWN:
                self.shown.append({
                    "raw_event_id": old.raw_event_id, "event_id": fact.event_id, "customer_id": fact.customer_id,
                    "metric": fact.metric, "dimension_key": fact.dimension_key, "period_start": fact.period_start,
                    "quantity": text(old.quantity), "rated_event_id": old.rated_id, "old_amount": text(old.amount),
                    "new_amount": text(new_amount), "difference": text(change.difference), "removed": change.new is None,
                    "invoice": where[0],
                })

    def result(self, *, customers: Mapping[int, str]) -> dict[str, Any]:
        return {
            "events": self.events,
            "changed": self.changed,
            "removed": self.removed,
            "currency": next(iter(self.currencies)) if len(self.currencies) == 1 else None,
            "total": {"old": text(self.old_total), "new": text(self.new_total),
                      "difference": text(self.new_total - self.old_total)},
            "customers": [
                {"customer_id": customer_id, "customer": customers.get(customer_id, ""), "events_changed": n,
                 "old": text(old), "new": text(new), "difference": text(new - old)}
                for customer_id, (n, old, new) in sorted(self.per_customer.items())
            ],
            "lines": [
                {"invoice": invoice, "line": position, "settled": invoice is not None, "metric": metric,
                 "dimension_key": key, "period_start": period_start, "events_changed": n, "difference": text(difference)}
                for (invoice, position, metric, key, period_start), (n, difference) in sorted(
                    self.per_line.items(), key=lambda item: (item[0][0] or "", item[0][1] or 0, item[0][2], item[0][3], item[0][4])
                )
            ],
            "event_changes": self.shown,
            "event_changes_truncated": self.changed > len(self.shown),
        }


def report_table(report: Mapping[str, Any]) -> str:
    """The report as a readable table (the command's default output), amounts rounded to the
    currency's minor unit."""
    currency = report.get("currency") or ""

    def money(value: str) -> str:
        return money_display(Decimal(value), currency) if currency else value

    total = report["total"]
    removed = f" ({report['removed']} removed)" if report.get("removed") else ""
    out = [
        f"{report['events']} events in scope, {report['changed']} rated differently{removed}.",
        f"The events rated differently: {money(total['old'])} -> {money(total['new'])}  (difference {money(total['difference'])})",
    ]
    if report["customers"]:
        out += ["", f"{'customer':<32} {'events':>8} {'was':>16} {'now':>16} {'difference':>16}"]
        for c in report["customers"]:
            name = (c["customer"] or str(c["customer_id"]))[:32]
            out.append(
                f"{name:<32} {c['events_changed']:>8} {money(c['old']):>16} {money(c['new']):>16} {money(c['difference']):>16}"
            )
    if report["lines"]:
        out += ["", f"{'invoice line':<24} {'metric':<24} {'period':<12} {'events':>8} {'difference':>16}"]
        for line in report["lines"]:
            where = f"{line['invoice']} line {line['line']}" if line["settled"] else "open period"
            metric = f"{line['metric']} ({line['dimension_key']})" if line["dimension_key"] else line["metric"]
            out.append(
                f"{where:<24} {metric[:24]:<24} {line['period_start'][:10]:<12} {line['events_changed']:>8} "
                f"{money(line['difference']):>16}"
            )
    written = report.get("written")
    if written:
        out += ["", f"Written: {written['reversals']} reversals and {written['ratings']} new ratings (correction {written['job']})."]
    return "\n".join(out)
