"""The reconciliation report: per customer reference (the subject an event carries) and period
of arrival time, what the ingest API accepted against what became of it.

    difference = accepted − (persisted + duplicates + dead-lettered + in flight)

must be 0. `persisted` is counted in the raw ledger itself (so a row missing from it shows), the
other terms come from the counts (metering.reconciliation.counts). Computed per minute; when a
minute does not balance, the usage topic is read over the minutes that do not (topic.py) to
name the events: accepted but in neither the ledger nor the DLQ (`missing`, once the consumer
group is past them; `in_flight` before), or in the ledger but never accepted by the API
(`not_accepted`: produced to the topic directly, or accepted while the count could not be
written to Redis).

Read, then a pure plan (`reconciliation_plan`), no writes except the idempotent flush of the
ingest counts still in Redis (ingest_counts_flush)."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone as dt_timezone

from django.db import connection
from django.db.models import Count, Max, Min, Sum
from django.utils import timezone

from catalog.models import ApiKey, Customer, Subscription

from ..models import ConsumedCount, DeadLetter, IngestCount, RawEvent
from .counts import ingest_counts_flush, minute_of
from .topic import TopicScan, usage_topic_scan

UTC = dt_timezone.utc
MAX_NAMED = 100  # event ids named per kind and row
MAX_PERIOD = timedelta(days=62)
EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC)


# --- period ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime

    @property
    def label(self) -> str:
        return f"{self.start.isoformat()}/{self.end.isoformat()}"


class PeriodInvalid(ValueError):
    pass


_MONTH = re.compile(r"\d{4}-\d{2}")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise PeriodInvalid(f"{text!r} has no UTC offset")
    return moment.astimezone(UTC)


def period_parse(text: str | None, *, now: datetime) -> Period:
    """`YYYY-MM` (a UTC month), `YYYY-MM-DD` (a UTC day), or `<start>/<end>` (ISO 8601 instants
    with an offset, half-open); empty: today (UTC). At most 62 days. Raises PeriodInvalid."""
    text = (text or "").strip()
    try:
        if not text:
            start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            return Period(start, start + timedelta(days=1))
        if _MONTH.fullmatch(text):
            start = datetime.strptime(text, "%Y-%m").replace(tzinfo=UTC)
            end = (start + timedelta(days=32)).replace(day=1)
            return Period(start, end)
        if _DAY.fullmatch(text):
            start = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
            return Period(start, start + timedelta(days=1))
        if text.count("/") == 1:
            start, end = (_instant(part) for part in text.split("/"))
        else:
            raise PeriodInvalid("expected YYYY-MM, YYYY-MM-DD or <start>/<end> (ISO 8601 with an offset)")
    except PeriodInvalid:
        raise
    except (ValueError, OverflowError) as error:
        raise PeriodInvalid(f"expected YYYY-MM, YYYY-MM-DD or <start>/<end> (ISO 8601 with an offset): {error}") from None
    if not start < end:
        raise PeriodInvalid("the start must be before the end")
    if not EARLIEST <= start and end <= LATEST:
        raise PeriodInvalid("outside 1970 to 9000")
    if end - start > MAX_PERIOD:
        raise PeriodInvalid("at most 62 days")
    return Period(start, end)


# --- the plan (pure) --------------------------------------------------------------------------

Cell = tuple[str, datetime]  # (subject, minute)


@dataclass
class Counts:
    accepted: int = 0
    received_new: int = 0
    persisted: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    in_flight: int = 0
    rated: int = 0
    unmatched: int = 0
    replayed: int = 0

    @property
    def difference(self) -> int:
        return self.accepted - (self.persisted + self.duplicates + self.dead_lettered + self.in_flight)

    def add(self, other: Counts) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class Row:
    subject: str
    customer_id: int | None
    customer: str
    counts: Counts = field(default_factory=Counts)
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    in_flight_ids: list[str] = field(default_factory=list)
    not_accepted: list[str] = field(default_factory=list)
    unbalanced_minutes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "subject": self.subject, "customer_id": self.customer_id, "customer": self.customer,
            **asdict(self.counts), "difference": self.counts.difference,
            "dead_letter_reasons": dict(sorted(self.dead_letter_reasons.items())),
            "missing_event_ids": self.missing, "in_flight_event_ids": self.in_flight_ids,
            "not_accepted_event_ids": self.not_accepted, "unbalanced_minutes": self.unbalanced_minutes,
        }


@dataclass
class Report:
    tenant_id: int
    period: Period
    customer_id: int | None
    rows: list[Row]
    totals: Counts
    scanned: bool
    scan_truncated: bool
    settled: bool  # the period ended more than a minute ago: nothing more should arrive in it

    @property
    def balanced(self) -> bool:
        return all(row.counts.difference == 0 for row in self.rows)

    def as_dict(self) -> dict:
        return {
            "tenant_id": self.tenant_id, "customer_id": self.customer_id,
            "period": {"start": self.period.start.isoformat(), "end": self.period.end.isoformat()},
            "balanced": self.balanced, "difference": self.totals.difference,
            "totals": {**asdict(self.totals), "difference": self.totals.difference},
            "rows": [row.as_dict() for row in self.rows],
            "topic_scanned": self.scanned, "topic_scan_truncated": self.scan_truncated, "settled": self.settled,
        }


@dataclass(frozen=True)
class Loaded:
    """What the report reads, per (subject, minute)."""

    accepted: dict[Cell, int]
    consumed: dict[Cell, tuple[int, int, int, int, int]]  # new, duplicates, rated, unmatched, replayed
    persisted: dict[Cell, int]
    dead_letters: dict[Cell, dict[str, int]]  # reason → count


def cells_plan(loaded: Loaded) -> dict[Cell, Counts]:
    """Counts per (subject, minute), before any topic scan."""
    cells: dict[Cell, Counts] = defaultdict(Counts)
    for cell, accepted in loaded.accepted.items():
        cells[cell].accepted += accepted
    for cell, (new, duplicates, rated, unmatched, replayed) in loaded.consumed.items():
        counts = cells[cell]
        counts.received_new += new
        counts.duplicates += duplicates
        counts.rated += rated
        counts.unmatched += unmatched
        counts.replayed += replayed
    for cell, persisted in loaded.persisted.items():
        cells[cell].persisted += persisted
    for cell, reasons in loaded.dead_letters.items():
        cells[cell].dead_lettered += sum(reasons.values())
    return dict(cells)


def unbalanced(cells: dict[Cell, Counts]) -> list[Cell]:
    """Cells whose counts do not balance, or whose ledger rows are fewer or more than counted."""
    return sorted(cell for cell, c in cells.items() if c.difference != 0 or c.received_new != c.persisted)


def _reason_kind(reason: str) -> str:
    """A DLQ reason's code (`negative_quantity: …` → negative_quantity; `unstorable: …` → unstorable)."""
    return reason.split(":", 1)[0].strip()[:60] or "unknown"


def reconciliation_plan(
    *, loaded: Loaded, scan: TopicScan | None, in_ledger: set[str], in_dlq: set[str], customers: dict[str, tuple[int | None, str]],
) -> list[Row]:
    """Rows per subject: counts summed over the minutes, the topic scan's findings placed in
    their minute (in flight records complete that minute's counts), event ids named. Pure."""
    cells = cells_plan(loaded)
    named: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    if scan is not None:
        for record in scan.records:
            cell = (record.subject, minute_of(datetime.fromtimestamp(record.timestamp_ms / 1000, UTC)))
            stored = record.event_id in in_ledger or record.event_id in in_dlq
            if not record.via_api:
                if stored:
                    named[record.subject]["not_accepted"].append(record.event_id)
            elif not stored:
                if scan.consumed(record):
                    named[record.subject]["missing"].append(record.event_id)
                else:
                    cells.setdefault(cell, Counts()).in_flight += 1
                    named[record.subject]["in_flight"].append(record.event_id)
    rows: dict[str, Row] = {}
    for (subject, minute), counts in sorted(cells.items()):
        row = rows.get(subject)
        if row is None:
            customer_id, customer = customers.get(subject, (None, "unknown"))
            row = rows[subject] = Row(subject=subject, customer_id=customer_id, customer=customer)
        row.counts.add(counts)
        if counts.difference != 0:
            row.unbalanced_minutes.append(minute.isoformat())
        for reason, count in loaded.dead_letters.get((subject, minute), {}).items():
            kind = _reason_kind(reason)
            row.dead_letter_reasons[kind] = row.dead_letter_reasons.get(kind, 0) + count
    for subject, kinds in named.items():
        row = rows.get(subject) or rows.setdefault(subject, Row(subject, *customers.get(subject, (None, "unknown"))))
        row.missing = sorted(set(kinds["missing"]))[:MAX_NAMED]
        row.in_flight_ids = sorted(set(kinds["in_flight"]))[:MAX_NAMED]
        row.not_accepted = sorted(set(kinds["not_accepted"]))[:MAX_NAMED]
    return sorted(rows.values(), key=lambda row: (row.customer, row.subject))


# --- reads ----------------------------------------------------------------------------------


def customer_subjects(*, tenant_id: int, customer_id: int) -> set[str]:
    """Every subject an event billing this customer can carry: its id, its subscriptions' ids
    and its API keys (revoked ones too)."""
    subjects = {f"customer:{customer_id}"}
    subjects.update(
        f"subscription:{pk}" for pk in Subscription.objects.filter(tenant_id=tenant_id, customer_id=customer_id).values_list("pk", flat=True)
    )
    subjects.update(
        f"key:{key_hash}"
        for key_hash in ApiKey.objects.filter(tenant_id=tenant_id, app__team__customer_id=customer_id).values_list("key_hash", flat=True)
    )
    return subjects


def _customers(*, tenant_id: int, subjects: Iterable[str]) -> dict[str, tuple[int | None, str]]:
    """subject → (customer id, label) for the subjects this tenant knows."""
    hashes, customer_ids, subscription_ids = [], [], []
    for subject in subjects:
        kind, _, ref = subject.partition(":")
        if kind == "key":
            hashes.append(ref)
        elif kind in ("customer", "subscription") and ref.isascii() and ref.isdigit() and len(ref) < 19:
            (customer_ids if kind == "customer" else subscription_ids).append(int(ref))
    found: dict[str, tuple[int | None, str]] = {}
    for key_hash, prefix, customer_id, name in ApiKey.objects.filter(tenant_id=tenant_id, key_hash__in=hashes).values_list(
        "key_hash", "prefix", "app__team__customer_id", "app__team__customer__name"
    ):
        found[f"key:{key_hash}"] = (customer_id, f"{name} (key {prefix}…)")
    for pk, name in Customer.objects.filter(tenant_id=tenant_id, pk__in=customer_ids).values_list("pk", "name"):
        found[f"customer:{pk}"] = (pk, name)
    for pk, customer_id, name in Subscription.objects.filter(tenant_id=tenant_id, pk__in=subscription_ids).values_list(
        "pk", "customer_id", "customer__name"
    ):
        found[f"subscription:{pk}"] = (customer_id, f"{name} (subscription {pk})")
    return found


def _persisted(*, tenant_id: int, period: Period, subjects: set[str] | None, id_range: tuple[int | None, int | None]) -> dict[Cell, int]:
    """Raw ledger rows per (subject, arrival minute), through the (tenant, id) index: the ids the
    counts saw bound the scan (a row outside them was never counted, and is not looked for)."""
    low, high = id_range
    if low is None:
        return {}
    subject_filter = "AND subject = ANY(%s)" if subjects is not None else ""
    params: list = [tenant_id, low, high, period.start, period.end]
    if subjects is not None:
        params.append(list(subjects))
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT subject, date_trunc('minute', received_at), count(*) FROM {RawEvent._meta.db_table}
            WHERE tenant_id = %s AND id BETWEEN %s AND %s AND received_at >= %s AND received_at < %s {subject_filter}
            GROUP BY 1, 2
            """,
            params,
        )
        return {(subject, minute.astimezone(UTC)): count for subject, minute, count in cursor.fetchall()}


def reconciliation_load(*, tenant_id: int, period: Period, subjects: set[str] | None) -> Loaded:
    """Every count of the period (one query per table)."""
    def scoped(queryset, tenant_field: str = "tenant_id"):
        queryset = queryset.filter(**{tenant_field: tenant_id}, minute__gte=period.start, minute__lt=period.end)
        return queryset.filter(subject__in=subjects) if subjects is not None else queryset

    accepted = {
        (s, m): total for s, m, total in scoped(IngestCount.objects).values_list("subject", "minute").annotate(total=Sum("accepted"))
    }
    consumed_rows = scoped(ConsumedCount.objects)
    consumed = {
        (row.subject, row.minute): (row.new, row.duplicates, row.rated, row.unmatched, row.replayed) for row in consumed_rows
    }
    bounds = consumed_rows.aggregate(low=Min("raw_id_min"), high=Max("raw_id_max"))
    dead_letters: dict[Cell, dict[str, int]] = defaultdict(dict)
    for s, m, reason, total in scoped(DeadLetter.objects).values_list("subject", "minute", "reason").annotate(total=Count("id")):
        dead_letters[(s, m)][reason] = total
    return Loaded(
        accepted=accepted, consumed=consumed,
        persisted=_persisted(tenant_id=tenant_id, period=period, subjects=subjects, id_range=(bounds["low"], bounds["high"])),
        dead_letters=dict(dead_letters),
    )


def reconciliation_report(
    *, tenant_id: int, period: Period, customer_id: int | None = None, scan: bool = True, now: datetime | None = None
) -> Report:
    """The report (see the module docstring). `scan`: read the usage topic over the minutes that
    do not balance, to name the events (BrokerUnavailable when the broker does not answer)."""
    now = now or timezone.now()
    ingest_counts_flush(now=now, grace_s=0)
    subjects = customer_subjects(tenant_id=tenant_id, customer_id=customer_id) if customer_id is not None else None
    loaded = reconciliation_load(tenant_id=tenant_id, period=period, subjects=subjects)
    off = unbalanced(cells_plan(loaded))
    topic_scan, in_ledger, in_dlq = None, set(), set()
    if scan and off:
        window = Period(max(period.start, min(m for _, m in off)), min(period.end, max(m for _, m in off) + timedelta(minutes=1)))
        topic_scan = usage_topic_scan(tenant_id=tenant_id, start=window.start, end=window.end, subjects={s for s, _ in off})
        ids = list({r.event_id for r in topic_scan.records})
        in_ledger = set(RawEvent.objects.filter(tenant_id=tenant_id, event_id__in=ids).values_list("event_id", flat=True))
        in_dlq = set(DeadLetter.objects.filter(tenant_id=tenant_id, event_id__in=ids).values_list("event_id", flat=True))
    subjects_seen = {s for cells in (loaded.accepted, loaded.consumed, loaded.dead_letters) for s, _ in cells}
    subjects_seen.update(r.subject for r in (topic_scan.records if topic_scan else ()))
    rows = reconciliation_plan(
        loaded=loaded, scan=topic_scan, in_ledger=in_ledger, in_dlq=in_dlq,
        customers=_customers(tenant_id=tenant_id, subjects=subjects_seen),
    )
    totals = Counts()
    for row in rows:
        totals.add(row.counts)
    return Report(
        tenant_id=tenant_id, period=period, customer_id=customer_id, rows=rows, totals=totals,
        scanned=topic_scan is not None, scan_truncated=bool(topic_scan and topic_scan.truncated),
        settled=period.end + timedelta(minutes=1) < now,
    )
