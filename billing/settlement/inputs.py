"""What a settlement run reads besides the rated ledger, in one round trip: the period's earlier
runs, the subscription's terms (discounts, the customer's tax rates, rollover policy, wallet),
the version in force, the running totals, the interim invoices' figures, and metric codes.

Read under the subscription's row lock, at the start of the run; the stages then work from
`SettlementInputs` (a hand-built one in the stage tests) instead of querying. Figures travel as
JSON with decimals as text (never a float) and are turned back into Decimal here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from aforo.db import bulk_cursor
from catalog.models import Metric, MetricConfig, RatePlanVersion, Subscription, SubscriptionTermsVersion, Tenant
from wallets.models import Wallet

from ..models import (
    AllowanceGrant,
    Discount,
    Invoice,
    InvoiceLine,
    RolloverGrant,
    RolloverPolicy,
    RunningTotal,
    SettlementRun,
    TaxRate,
)

ZERO = Decimal(0)


@dataclass(frozen=True)
class SubscriptionTerms:
    """The subscription as settlement sees it: read once under its row lock, frozen (the stages
    never see the Django model; a stage test builds one with the terms it needs). Its terms are
    those of the version governing the period settled (catalog.terms), but `invoice_threshold`,
    which acts in real time, is the subscription's copy of the version in effect now."""

    id: int = 0
    tenant_id: int = 0
    customer_id: int = 0
    currency: str = "USD"
    billing_mode: str = "postpaid"
    billing_cadence: str = "monthly"
    billing_anchor: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    rate_plan_id: int | None = None
    min_commitment: Decimal | None = None
    spend_cap: Decimal | None = None
    spend_cap_action: str = "cap"
    invoice_threshold: Decimal | None = None
    net_terms_days: int = 30
    invoice_grace_hours: int = 0
    # Per-metric minimums per period: (metric code, amount), by code.
    metric_minimums: tuple[tuple[str, Decimal], ...] = ()
    terms_version_id: int | None = None  # the SubscriptionTermsVersion they come from (None: the subscription's fields)
    # A trial (billing.trials): its end date, its usage threshold's presence, and its conversion.
    has_trial: bool = False
    trial_ends_at: datetime | None = None
    trial_converted_at: datetime | None = None

    @property
    def pk(self) -> int:
        return self.id

    @property
    def paid_from(self) -> datetime | None:
        """From when the subscription pays its fixed fees and minimum commitment: its start, or its
        trial's conversion — the conversion recorded, else its end date whether swept or not —
        None while a usage-based trial has not converted."""
        if not self.has_trial:
            return self.started_at
        converted = min((t for t in (self.trial_converted_at, self.trial_ends_at) if t is not None), default=None)
        if converted is None:
            return None
        return converted if self.started_at is None else max(self.started_at, converted)

    def trial_overlaps(self, period_start: datetime) -> bool:
        """Whether the period starting at `period_start` may hold trial usage (rated before the
        conversion, which is after its start)."""
        if not self.has_trial:
            return False
        paid_from = self.paid_from
        return paid_from is None or paid_from > period_start

    @classmethod
    def of(cls, subscription: Subscription, *, version: SubscriptionTermsVersion | None = None) -> SubscriptionTerms:
        """The subscription with the terms of `version` (None: its own fields)."""
        terms = version or subscription
        return cls(
            id=subscription.pk, tenant_id=subscription.tenant_id, customer_id=subscription.customer_id,
            currency=subscription.currency, billing_mode=subscription.billing_mode,
            billing_cadence=subscription.billing_cadence, billing_anchor=subscription.billing_anchor,
            started_at=subscription.started_at, ended_at=subscription.ended_at, rate_plan_id=subscription.rate_plan_id,
            min_commitment=terms.min_commitment, spend_cap=terms.spend_cap,
            spend_cap_action=terms.spend_cap_action, invoice_threshold=subscription.invoice_threshold,
            net_terms_days=terms.net_terms_days, invoice_grace_hours=terms.invoice_grace_hours,
            metric_minimums=metric_minimums_of(terms.metric_minimums),
            terms_version_id=None if version is None else version.pk,
            has_trial=subscription.has_trial or subscription.trial_converted_at is not None,
            trial_ends_at=subscription.trial_ends_at, trial_converted_at=subscription.trial_converted_at,
        )


def metric_minimums_of(stored: object) -> tuple[tuple[str, Decimal], ...]:
    """{code: "amount"} (as stored, validated by catalog.terms) as sorted (code, Decimal) pairs."""
    if not isinstance(stored, dict):
        return ()
    return tuple(sorted((str(code), Decimal(str(amount))) for code, amount in stored.items()))


@dataclass(frozen=True)
class RolloverTerms:
    """A RolloverPolicy of the subscription (one metric)."""

    metric_id: int
    metric_code: str
    included_units: Decimal
    cap_units: Decimal | None
    expires_after_periods: int


@dataclass(frozen=True)
class Lot:
    """Carried units the latest earlier final run left (a RolloverGrant)."""

    metric_id: int
    earned_period_start: datetime
    last_period_start: datetime
    units: Decimal


@dataclass(frozen=True)
class PriorRun:
    id: int
    period_start: datetime
    kind: str
    watermark: int


@dataclass(frozen=True)
class Total:
    """A running total of the period: one metric and dimension key."""

    metric_id: int
    dimension_key: str
    units: Decimal
    amount: Decimal
    event_count: int = 0
    last_rated_id: int | None = None  # its newest rated event
    snapshot_id: int | None = None  # … and the config snapshot that event was rated with
    updated_at: datetime | None = None  # when its newest event was rated


@dataclass(frozen=True)
class Grant:
    """Units of a metric granted free for the period (AllowanceGrant)."""

    id: int
    metric_id: int
    units: Decimal
    description: str


@dataclass(frozen=True)
class LatePeriod:
    """An earlier, settled period with late usage on this run's invoice: what the invoices issued
    before this run charged for it (discounts and taxes aside), and the terms it was settled with
    (late_periods.late_periods_read). The Commit stage adjusts it from these alone."""

    period_start: datetime
    charged: Decimal = ZERO  # its usage, late usage, base, overage and allowance lines
    committed: Decimal = ZERO  # its commitment lines: the true-up, and adjustments since (>= 0)
    capped: Decimal = ZERO  # its cap lines (<= 0)
    min_commitment: Decimal | None = None
    spend_cap: Decimal | None = None
    spend_cap_action: str = "cap"
    # Per metric (id): its charges, its minimum's lines (commitment lines of the metric: the
    # true-up and adjustments since, >= 0), and the minimum it was settled with (prorated).
    metric_charged: dict[int, Decimal] = field(default_factory=dict)
    metric_committed: dict[int, Decimal] = field(default_factory=dict)
    metric_minimums: dict[int, Decimal] = field(default_factory=dict)


@dataclass
class SettlementInputs:
    runs: list[PriorRun] = field(default_factory=list)  # the subscription's runs, oldest first
    # Per earlier period with a final run: the newest rated event of its running totals (None:
    # a total that does not know it); no entry: no events.
    period_newest: dict[datetime, int | None] = field(default_factory=dict)
    version_id: int | None = None  # the published version in force at the period's start
    totals: list[Total] = field(default_factory=list)
    totals_complete: bool = False  # inputs_load read every total of the period (a hand-built one may not)
    discounts: list[Discount] = field(default_factory=list)  # in order (unsaved instances: kind, value, description)
    tax_rates: list[TaxRate] = field(default_factory=list)
    grants: list[Grant] = field(default_factory=list)
    has_rollover: bool = False
    rollover_policies: list[RolloverTerms] = field(default_factory=list)  # by metric id
    carried_lots: list[Lot] = field(default_factory=list)  # the latest earlier final run's, by expiry
    version_configs: dict[int, dict] = field(default_factory=dict)  # metric_id -> config of the version in force
    wallet: Wallet | None = None  # the customer's wallet in the subscription's currency (id, balance, held)
    interim_subtotal: Decimal = ZERO  # this period's interim invoices: their subtotals
    interim_usage: Decimal = ZERO  # … and the rated amounts their usage lines covered
    interim_units: dict[tuple[int, str], Decimal] = field(default_factory=dict)  # … and their units per (metric, key)
    metric_codes: dict[int, str] = field(default_factory=dict)  # the tenant's metrics
    metric_names: dict[int, str] = field(default_factory=dict)  # … and their names
    # This period's interim invoices: per metric, their charges (usage, base, overage, allowance).
    interim_metric: dict[int, Decimal] = field(default_factory=dict)
    tenant_slug: str = "tenant"  # invoice numbers' prefix
    before_run: int | None = None  # a recomputation: only what the runs before this one had done

    def final_run(self, period_start: datetime) -> PriorRun | None:
        return next((r for r in self.runs if r.period_start == period_start and r.kind == SettlementRun.Kind.FINAL), None)

    def interim_count(self, period_start: datetime) -> int:
        return sum(1 for r in self.runs if r.period_start == period_start and r.kind == SettlementRun.Kind.INTERIM)

    def ranges(self, period_start: datetime, *, final: bool) -> dict[datetime, int]:
        """period_start -> the id above which its rated events are still unsettled. For the run's
        own period, above the highest watermark of its earlier (interim) runs; a final run also
        takes each EARLIER period that had its final run, above the highest watermark that
        covered it — its own runs', and every later period's final run, including one after
        this period (a gap settled late): late events."""
        own = max((r.watermark for r in self.runs if r.period_start == period_start), default=0)
        ranges = {period_start: own}
        if final:
            for earlier in {r.period_start for r in self.runs if r.kind == "final" and r.period_start < period_start}:
                ranges[earlier] = max(
                    r.watermark for r in self.runs
                    if r.period_start == earlier or (r.kind == "final" and r.period_start > earlier)
                )
        return ranges

    def previous_final(self, period_start: datetime) -> PriorRun | None:
        earlier = [r for r in self.runs if r.kind == "final" and r.period_start < period_start]
        return max(earlier, key=lambda r: r.period_start) if earlier else None


def _table(model) -> str:
    return model._meta.db_table


SQL = f"""
SELECT
  (SELECT json_agg(json_build_array(id, period_start, kind, watermark) ORDER BY id)
     FROM {_table(SettlementRun)} WHERE subscription_id = %(subscription)s AND (%(before)s::bigint IS NULL OR id < %(before)s)),
  (SELECT json_build_array(v.id, (SELECT json_object_agg(c.metric_id, c.config) FROM {_table(MetricConfig)} c
                                    WHERE c.version_id = v.id))
     FROM {_table(RatePlanVersion)} v
     WHERE v.rate_plan_id = %(plan)s AND v.status = 'published' AND v.effective_from <= %(in_force_at)s
     ORDER BY v.effective_from DESC LIMIT 1),
  (SELECT json_agg(json_build_array(metric_id, dimension_key, units::text, amount::text, event_count, last_rated_id,
                                    pricing_snapshot_id, updated_at))
     FROM {_table(RunningTotal)} WHERE subscription_id = %(subscription)s AND period_start = %(period)s),
  (SELECT json_agg(json_build_array(period_start, newest, unknown)) FROM (
     SELECT period_start, MAX(last_rated_id) AS newest, bool_or(last_rated_id IS NULL) AS unknown
     FROM {_table(RunningTotal)}
     WHERE subscription_id = %(subscription)s AND period_start < %(period)s AND period_start IN (
       SELECT period_start FROM {_table(SettlementRun)} WHERE subscription_id = %(subscription)s AND kind = 'final')
     GROUP BY period_start) AS earlier),
  (SELECT json_agg(json_build_array(kind, value::text, description, metric_id, periods, starts_at, ends_at)
                   ORDER BY position, id)
     FROM {_table(Discount)} WHERE subscription_id = %(subscription)s),
  (SELECT json_agg(json_build_array(name, percent::text, metric_id, starts_at, ends_at) ORDER BY id)
     FROM {_table(TaxRate)} WHERE customer_id = %(customer)s),
  (SELECT json_agg(json_build_array(id, metric_id, units::text, description) ORDER BY id)
     FROM {_table(AllowanceGrant)} WHERE subscription_id = %(subscription)s AND period_start = %(period)s),
  (SELECT json_agg(json_build_array(p.metric_id, m.code, p.included_units::text, p.cap_units::text,
                                    p.expires_after_periods) ORDER BY p.metric_id)
     FROM {_table(RolloverPolicy)} p JOIN {_table(Metric)} m ON m.id = p.metric_id
     WHERE p.subscription_id = %(subscription)s),
  (SELECT json_build_array(id, balance::text, held::text)
     FROM {_table(Wallet)} WHERE customer_id = %(customer)s AND currency = %(currency)s),
  (SELECT COALESCE(SUM(i.subtotal), 0) FROM {_table(Invoice)} i JOIN {_table(SettlementRun)} r ON r.invoice_id = i.id
     WHERE r.subscription_id = %(subscription)s AND r.period_start = %(period)s AND r.kind = 'interim'
       AND (%(before)s::bigint IS NULL OR r.id < %(before)s)),
  (SELECT COALESCE(SUM(l.amount_unrounded), 0) FROM {_table(InvoiceLine)} l
     JOIN {_table(SettlementRun)} r ON r.invoice_id = l.invoice_id
     WHERE r.subscription_id = %(subscription)s AND r.period_start = %(period)s AND r.kind = 'interim' AND l.kind = 'usage'
       AND (%(before)s::bigint IS NULL OR r.id < %(before)s)),
  (SELECT json_agg(json_build_array(l.metric_id, l.dimension_key, l.units::text)) FROM {_table(InvoiceLine)} l
     JOIN {_table(SettlementRun)} r ON r.invoice_id = l.invoice_id
     WHERE r.subscription_id = %(subscription)s AND r.period_start = %(period)s AND r.kind = 'interim' AND l.kind = 'usage'
       AND (%(before)s::bigint IS NULL OR r.id < %(before)s)),
  (SELECT json_object_agg(id, json_build_array(code, name)) FROM {_table(Metric)} WHERE tenant_id = %(tenant)s),
  (SELECT slug FROM {_table(Tenant)} WHERE id = %(tenant)s),
  (SELECT json_object_agg(metric_id, amount::text) FROM (
     SELECT l.metric_id, SUM(l.amount) AS amount FROM {_table(InvoiceLine)} l
     JOIN {_table(SettlementRun)} r ON r.invoice_id = l.invoice_id
     WHERE r.subscription_id = %(subscription)s AND r.period_start = %(period)s AND r.kind = 'interim'
       AND l.kind IN ('usage', 'base', 'overage', 'allowance') AND l.metric_id IS NOT NULL
       AND (%(before)s::bigint IS NULL OR r.id < %(before)s)
     GROUP BY l.metric_id) AS interim_metric)
"""


def _instant(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _summed(lines: list | None) -> dict[tuple[int, str], Decimal]:
    units: dict[tuple[int, str], Decimal] = {}
    for metric_id, key, amount in lines or ():
        units[(metric_id, key)] = units.get((metric_id, key), ZERO) + Decimal(amount)
    return units


def _carried_lots(cursor, runs: list[PriorRun], period_start: datetime) -> list[Lot]:
    """The lots the latest final run before this period left."""
    earlier = [r for r in runs if r.kind == "final" and r.period_start < period_start]
    if not earlier:
        return []
    cursor.execute(
        f"""SELECT metric_id, earned_period_start, last_period_start, units FROM {_table(RolloverGrant)}
            WHERE run_id = %s ORDER BY last_period_start, earned_period_start""",
        [max(earlier, key=lambda r: r.period_start).id],
    )
    return [Lot(*row) for row in cursor.fetchall()]


def inputs_load(subscription: SubscriptionTerms, period_start: datetime, *, before_run: int | None = None) -> SettlementInputs:
    """`before_run`: only the runs made before that one (as they stood when it ran: a reissue
    recomputes it); the terms — discounts, taxes, grants, wallet — are always as they are now."""
    with bulk_cursor() as cursor:  # prepared after a few runs: the plan of this wide query is most of its cost
        cursor.execute(
            SQL,
            {
                "subscription": subscription.pk, "customer": subscription.customer_id, "tenant": subscription.tenant_id,
                "plan": subscription.rate_plan_id, "currency": subscription.currency, "period": period_start,
                "in_force_at": max(period_start, subscription.started_at), "before": before_run,
            },
        )
        (
            runs, version, totals, newest, discounts, taxes, grants, policies, wallet, interim_subtotal,
            interim_usage, interim_lines, codes, slug, interim_metric,
        ) = cursor.fetchone()
        prior = [PriorRun(i, datetime.fromisoformat(start), kind, mark) for i, start, kind, mark in runs or ()]
        lots = _carried_lots(cursor, prior, period_start) if policies else []
    version_id, configs = version if version is not None else (None, None)
    return SettlementInputs(
        runs=prior,
        version_id=version_id,
        version_configs={int(metric): config for metric, config in (configs or {}).items()},
        totals=[
            Total(metric, key, Decimal(units), Decimal(amount), count, last_id, snapshot_id, datetime.fromisoformat(updated))
            for metric, key, units, amount, count, last_id, snapshot_id, updated in totals or ()
        ],
        totals_complete=True,
        period_newest={datetime.fromisoformat(start): None if unknown else top for start, top, unknown in newest or ()},
        discounts=[
            Discount(
                kind=kind, value=Decimal(value), description=text, metric_id=metric, periods=periods,
                starts_at=_instant(starts), ends_at=_instant(ends),
            )
            for kind, value, text, metric, periods, starts, ends in discounts or ()
        ],
        tax_rates=[
            TaxRate(name=name, percent=Decimal(percent), metric_id=metric, starts_at=_instant(starts), ends_at=_instant(ends))
            for name, percent, metric, starts, ends in taxes or ()
        ],
        grants=[Grant(i, metric, Decimal(units), text) for i, metric, units, text in grants or ()],
        has_rollover=bool(policies),
        rollover_policies=[
            RolloverTerms(metric, code, Decimal(included), None if cap is None else Decimal(cap), expires)
            for metric, code, included, cap, expires in policies or ()
        ],
        carried_lots=lots,
        wallet=None if wallet is None else Wallet(
            pk=wallet[0], customer_id=subscription.customer_id, currency=subscription.currency,
            balance=Decimal(wallet[1]), held=Decimal(wallet[2]),
        ),
        interim_subtotal=interim_subtotal, interim_usage=interim_usage, interim_units=_summed(interim_lines),
        metric_codes={int(k): code for k, (code, _) in (codes or {}).items()},
        metric_names={int(k): name for k, (_, name) in (codes or {}).items()},
        interim_metric={int(k): Decimal(v) for k, v in (interim_metric or {}).items()},
        tenant_slug=slug, before_run=before_run,
    )
