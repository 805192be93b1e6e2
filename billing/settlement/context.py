"""What the stages share: the subscription and period being settled, the watermark, the
aggregates and the draft invoice lines, money helpers, and the log of what each stage did."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from aforo.money import LEGACY_MINOR_UNITS, quantize_to_minor_unit
from aforo.periods import active_fraction

from .inputs import ZERO, LatePeriod, SettlementInputs, SubscriptionTerms

__all__ = ["ZERO", "Aggregate", "CarriedLot", "Line", "SettlementContext", "round_money"]
# Lines are rounded ONCE, to the currency's minor unit (aforo.money's ISO 4217 table), half away
# from zero (commercial rounding).
ROUNDING = ROUND_HALF_UP


def _span(microseconds: int) -> str:
    seconds = microseconds // 1_000_000
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    return f"{days}d {hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


def round_money(amount: Decimal, currency: str) -> Decimal:
    """`amount` rounded to the currency's minor unit. Currencies are validated when a rate plan
    or subscription is saved; a legacy row with a code the table does not know still rounds, to
    LEGACY_MINOR_UNITS places, so an old subscription can always be settled."""
    return quantize_to_minor_unit(amount, currency, rounding=ROUNDING, default=LEGACY_MINOR_UNITS)


@dataclass
class Aggregate:
    """The rated events of one (period, metric, dimension) in (rated_from, rated_to]."""

    period_start: datetime
    metric_id: int
    metric_code: str
    dimension_key: str
    units: Decimal
    amount: Decimal  # sum of rated amounts: quote(units) − quote(0) when the period is whole
    event_count: int
    rated_from_id: int  # exclusive
    rated_to_id: int  # inclusive
    config: dict[str, Any]  # the snapshot the latest of its events was rated with
    late: bool = False  # a period already settled: an adjustment line
    trial: bool = False  # trial usage (rated at zero): a line of its own


@dataclass
class Line:
    kind: str
    description: str
    amount_unrounded: Decimal
    amount: Decimal = ZERO  # rounded once, when the line is added
    metric_id: int | None = None
    dimension_key: str = ""
    period_start: datetime | None = None
    units: Decimal | None = None
    event_count: int = 0
    rated_from_id: int | None = None
    rated_to_id: int | None = None
    # A combined invoice's part (settlement.parts): the subscription the line comes from and the
    # part's heading. Left unset on a one-part invoice (the invoice's subscription, no heading).
    subscription_id: int | None = None
    part: str = ""
    trial: bool = False  # a usage line of trial usage (its rated events: those with trial = true)


@dataclass
class CarriedLot:
    """Rolled-over units of one metric, earned in one period, usable up to `last_period_start`."""

    metric_id: int
    earned_period_start: datetime
    last_period_start: datetime
    units: Decimal


@dataclass(frozen=True)
class CouponBalance:
    coupon_id: int
    label: str
    remaining: Decimal


@dataclass
class SettlementContext:
    subscription: SubscriptionTerms
    period_start: datetime
    period_end: datetime
    kind: str  # "final" | "interim"
    watermark: int
    now: datetime
    inputs: SettlementInputs = field(default_factory=SettlementInputs)  # read once, under the lock
    ledger_rows: list[tuple] = field(default_factory=list)  # aggregate.ledger_read: one per (period, metric, key)
    key_configs: dict[tuple[int, str], dict[str, Any]] = field(default_factory=dict)  # own period: (metric, key) -> snapshot
    aggregates: list[Aggregate] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    stages: list[dict[str, Any]] = field(default_factory=list)
    wallet_realtime: Decimal = ZERO  # debits already made in real time for the settled rated events
    wallet_settled: Decimal = ZERO  # what an earlier settlement of the same events took (a reissue's recomputation)
    wallet_now: Decimal = ZERO  # what settlement takes from (−: gives back to) the wallet
    amount_due: Decimal = ZERO
    quota: list[dict[str, Any]] = field(default_factory=list)
    ranges: dict[datetime, int] = field(default_factory=dict)  # period_start -> settled above this id
    # The period's units per (metric, dimension key) up to the watermark, interim invoices' included
    # (aggregate.ledger_read). Rollover (final runs of subscriptions with a RolloverPolicy): per
    # metric, the carried units this period draws on (the Allowance stage prices them), and the
    # lots left for later periods (persisted with the run).
    period_units: dict[tuple[int, str], Decimal] = field(default_factory=dict)
    allowances: dict[int, Decimal] = field(default_factory=dict)
    carry_forward: list[CarriedLot] = field(default_factory=list)
    # The earlier periods whose late usage this run bills: what was charged for each before, and
    # its terms (late_periods.late_periods_read; the Commit stage adjusts them).
    late_periods: dict[datetime, LatePeriod] = field(default_factory=dict)
    # The customer's usable coupons in the invoice's currency, soonest-expiring first, with what
    # each has left (coupons.coupons_read, under their row locks), and what this invoice takes.
    coupons: list[CouponBalance] = field(default_factory=list)
    coupon_redemptions: list[tuple[int, Decimal]] = field(default_factory=list)
    # A part of a combined invoice (settlement.parts): its heading, and whether it bills only the
    # late usage of a subscription that ended before the period.
    part: str = ""
    late_part: bool = False
    parts: list[SettlementContext] = field(default_factory=list)  # the primary's: the other parts, in order
    # A postpaid customer's usable credit grants in the invoice's currency, in consumption order,
    # with what each has left (credit_grants.credit_grants_read, locked), what this invoice takes
    # from each, and the voided invoice a reissue gives back first.
    credit_grants: list[Any] = field(default_factory=list)
    credit_grant_draws: list[tuple[int, Decimal]] = field(default_factory=list)
    credit_grants_giving_back: int | None = None

    @property
    def currency(self) -> str:
        return self.subscription.currency

    @property
    def previously_invoiced(self) -> Decimal:
        """This period's interim invoices' subtotals (they count toward commitment and cap)."""
        return self.inputs.interim_subtotal

    @property
    def final(self) -> bool:
        return self.kind == "final"

    @property
    def active(self) -> tuple[int, int]:
        """(active, whole) microseconds of the period the subscription covers as a paying one: a
        period it started or ended within (a start mid-period, a cancellation, a plan change) or
        whose trial converted within is partial, and its fixed charges and minimum commitment are
        prorated by time (aforo.periods.active_fraction); a period all in trial has none."""
        paid_from = self.subscription.paid_from
        if self.subscription.has_trial and paid_from is None:
            return 0, active_fraction(
                period_start=self.period_start, period_end=self.period_end, started_at=None, ended_at=None
            )[1]
        return active_fraction(
            period_start=self.period_start, period_end=self.period_end,
            started_at=paid_from, ended_at=self.subscription.ended_at,
        )

    def prorated(self, amount: Decimal) -> Decimal:
        """`amount` × the active share of the period (exact: the microseconds' ratio)."""
        active, whole = self.active
        if active >= whole or whole <= 0:
            return amount
        return amount * Decimal(active) / Decimal(whole)

    def proration_text(self) -> str:
        """ " prorated 12d 03:00:00 of 30d (40.42%)", or "" for a whole period."""
        active, whole = self.active
        if active >= whole or whole <= 0:
            return ""
        share = (Decimal(active) * 100 / Decimal(whole)).quantize(Decimal("0.01"))
        paid_from = self.subscription.paid_from
        trial = ""
        if self.subscription.has_trial and paid_from is not None and self.period_start < paid_from < self.period_end:
            trial = f" from the trial's conversion ({paid_from:%Y-%m-%d %H:%M} UTC)"
        return f", prorated {_span(active)} of {_span(whole)} ({share}%){trial}"

    def add(self, line: Line) -> Line:
        line.amount = round_money(line.amount_unrounded, self.currency)
        self.lines.append(line)
        return line

    def total(self, *kinds: str) -> Decimal:
        return sum((line.amount for line in self.lines if not kinds or line.kind in kinds), ZERO)

    def total_of_metric_minimums(self) -> Decimal:
        """The run's own period's per-metric minimum true-ups (commitment lines of a metric)."""
        return sum(
            (line.amount for line in self.lines
             if line.kind == "commitment" and line.metric_id is not None and line.period_start == self.period_start),
            ZERO,
        )

    def log(self, stage: str, **summary: Any) -> None:
        self.stages.append({"stage": stage, **{k: (str(v) if isinstance(v, Decimal) else v) for k, v in summary.items()}})
