"""Which events of a batch are trial usage, and which trials the batch converts: a pure plan over
immutable rows (no database, no Django), like billing.rating.plan.

The rule, per subscription with a trial, in arrival order: an event timestamped before the trial's
boundary — the earlier of its end date and its conversion — is free; its units of the trial
metric count toward the usage threshold; the event whose units reach it is the last free one, and
the trial converts right after the latest free event's timestamp (+1 µs). So, over the whole
ledger, whatever the arrival order:

    every free event's timestamp  <  converted_at  <=  every billed event's timestamp

— a late event timestamped before the conversion is free (even past the threshold: its timestamp
decides), one after it billed, and an event after the end date is billed before any sweep has
recorded the conversion. An event is never split: the one that crosses the threshold is free in
full (a 500-unit event at 9,800 of 10,000 makes 10,300 free units)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

ZERO = Decimal(0)
TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class TrialTerms:
    """One subscription's trial as read under its TrialUsage row lock."""

    subscription_id: int
    ends_at: datetime | None = None
    converted_at: datetime | None = None
    metric_id: int | None = None
    threshold: Decimal | None = None  # units of metric_id
    units: Decimal = ZERO  # free units of metric_id so far
    free_events: int = 0
    latest_free_at: datetime | None = None

    @property
    def configured(self) -> bool:
        return self.ends_at is not None or self.threshold is not None

    @property
    def boundary(self) -> datetime | None:
        """Events from this instant on are billed (None: until a usage threshold converts it)."""
        return min((t for t in (self.ends_at, self.converted_at) if t is not None), default=None)

    def free_at(self, at: datetime) -> bool:
        boundary = self.boundary
        return self.configured and (boundary is None or at < boundary)


class TrialEvent(NamedTuple):
    subscription_id: int
    metric_id: int
    quantity: Decimal
    timestamp: datetime
    raw_event_id: int | None = None
    event_id: str = ""


@dataclass(frozen=True)
class PlannedConversion:
    subscription_id: int
    converted_at: datetime
    cause: str  # "date" | "usage" | "operator"
    units_used: Decimal
    raw_event_id: int | None = None
    event_id: str = ""


def trials_plan(
    events: Sequence[TrialEvent], terms: Mapping[int, TrialTerms]
) -> tuple[list[bool], dict[int, TrialTerms], list[PlannedConversion]]:
    """For `events` in arrival order (each subscription's trial in `terms`): whether each is
    free, every trial after the batch, and the conversions the batch's usage made."""
    state = dict(terms)
    free: list[bool] = []
    conversions: list[PlannedConversion] = []
    for event in events:
        trial = state[event.subscription_id]
        if not trial.free_at(event.timestamp):
            free.append(False)
            continue
        free.append(True)
        units = trial.units + (event.quantity if event.metric_id == trial.metric_id else ZERO)
        latest = event.timestamp if trial.latest_free_at is None else max(trial.latest_free_at, event.timestamp)
        trial = replace(trial, units=units, free_events=trial.free_events + 1, latest_free_at=latest)
        if trial.converted_at is None and trial.threshold is not None and units >= trial.threshold:
            at = conversion_instant(trial, now=latest + TICK)
            trial = replace(trial, converted_at=at)
            conversions.append(
                PlannedConversion(event.subscription_id, at, "usage", units, event.raw_event_id, event.event_id)
            )
        state[event.subscription_id] = trial
    return free, state, conversions


def conversion_instant(trial: TrialTerms, *, now: datetime) -> datetime:
    """When a trial converted at `now` converts: never before an event already rated free (the
    latest one's timestamp + 1 µs: events may be timestamped up to minutes ahead) and never after
    its end date (usage from that date on is billed, swept or not)."""
    at = now if trial.latest_free_at is None else max(now, trial.latest_free_at + TICK)
    return at if trial.ends_at is None else min(at, trial.ends_at)


def conversion_cause(trial: TrialTerms, *, at: datetime, requested: str) -> str:
    """A conversion requested at or after the end date is the date's."""
    return "date" if trial.ends_at is not None and at >= trial.ends_at else requested
