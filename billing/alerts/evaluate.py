"""Alert evaluation over a batch of rated records (what the `alerts` consumer calls, once a batch).

    read     the tenants' catalog generations (one query), then — only when a generation moved
             or a subscription is new — their rules, subscriptions and prices; the spend so far
             of the subscriptions a spend rule watches (one query); the anomaly buckets (Redis)
    plan     billing.alerts.plan: the thresholds each record crosses, the anomalies (pure)
    write    one transaction: each firing inserted unless it exists (the unique key makes
             replays no-ops), and for each new one its webhook deliveries (notify), sent after
             the commit

A tenant without rules costs a dictionary lookup per record.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from django.db import connection, transaction
from django.db.models import Q, Sum

from aforo.money import decimal_text
from catalog.generation import catalog_generation_get_many
from catalog.models import MetricConfig, Subscription
from notify.models import AlertRule
from notify.services import InlineSender, webhook_event_emit

from ..models import RunningTotal
from ..rating.params import UsageError
from ..rating.overrides import compile_config
from . import anomaly
from .plan import (
    ANOMALY,
    DEFAULT_BASELINE_MINUTES,
    DEFAULT_FACTOR,
    DEFAULT_MIN_UNITS,
    DEFAULT_WINDOW_MINUTES,
    SPEND_KINDS,
    UNIT_KINDS,
    Firing,
    Rule,
    anomaly_firing,
    anomaly_verdict,
    effective_rules,
    spend_firings,
    unit_firings,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rated:
    """The fields of a usage.rated.v1 record the rules read."""

    rated_event_id: int
    tenant_id: int
    event_id: str
    customer_id: int
    subscription_id: int
    metric: str
    dimension_key: str
    units_before: Decimal
    units_after: Decimal
    currency: str
    rate_plan_version_id: int
    period_start: datetime
    period_end: datetime
    timestamp: datetime
    partition: str = ""
    offset: int = -1


def rated_decode(value: bytes, *, partition: str = "", offset: int = -1) -> Rated:
    """A rated record's bytes as `Rated`; ValueError (or KeyError/TypeError) when they are not one."""
    r = orjson.loads(value)
    if not isinstance(r, dict):
        raise ValueError("not a JSON object")
    rated = Rated(
        rated_event_id=int(r["rated_event_id"]), tenant_id=int(r["tenant_id"]), event_id=str(r["event_id"]),
        customer_id=int(r["customer_id"]), subscription_id=int(r["subscription_id"]), metric=str(r["metric"]),
        dimension_key=str(r["dimension_key"]), units_before=Decimal(r["units_before"]),
        units_after=Decimal(r["units_after"]), currency=str(r["currency"]),
        rate_plan_version_id=int(r["rate_plan_version_id"]), period_start=datetime.fromisoformat(r["period_start"]),
        period_end=datetime.fromisoformat(r["period_end"]), timestamp=datetime.fromisoformat(r["timestamp"]),
        partition=partition, offset=offset,
    )
    if not (rated.units_before.is_finite() and rated.units_after.is_finite()) or rated.timestamp.tzinfo is None:
        raise ValueError("units must be finite and times timezone-aware")
    return rated


@dataclass(frozen=True)
class _Sub:
    customer_id: int
    rate_plan_id: int
    min_commitment: Decimal | None
    rules: tuple[Rule, ...]


class AlertEvaluator:
    """Evaluates batches; keeps per-process caches keyed by each tenant's catalog generation
    (every rule, subscription or price change moves it, in its own transaction)."""

    MAX_CACHED = 100_000

    def __init__(self, *, sender: InlineSender | None = None) -> None:
        self.sender = sender  # first attempts of the webhooks in this process (None: by Celery)
        self._rules: dict[int, tuple[int, list[tuple[Rule, int | None, int | None, bool]]]] = {}
        self._subs: dict[int, tuple[int, _Sub | None]] = {}
        self._models: OrderedDict[tuple[int, str, str], Any] = OrderedDict()
        self._fired: OrderedDict[tuple, None] = OrderedDict()  # firings known to exist (skip their insert)

    # --- read ----------------------------------------------------------------------------
    def _tenant_rules(self, tenant_id: int, generation: int):
        cached = self._rules.get(tenant_id)
        if cached is None or cached[0] != generation:
            rows = AlertRule.objects.filter(tenant_id=tenant_id).select_related("metric")
            rules = [
                (
                    Rule(
                        id=r.pk, kind=r.kind, metric_id=r.metric_id, metric=r.metric.code if r.metric_id else None,
                        thresholds=tuple(Decimal(t) for t in r.thresholds), name=r.name, factor=r.factor,
                        window_minutes=r.window_minutes, baseline_minutes=r.baseline_minutes, min_units=r.min_units,
                    ),
                    r.rate_plan_id, r.subscription_id, r.is_active,
                )
                for r in rows
            ]
            cached = self._rules[tenant_id] = (generation, rules)
        return cached[1]

    def _subscriptions(self, wanted: dict[int, tuple[int, int]]) -> dict[int, _Sub | None]:
        """wanted: subscription id → (tenant id, generation)."""
        stale = [sid for sid, (_, gen) in wanted.items() if self._subs.get(sid, (None,))[0] != gen]
        if stale:
            if len(self._subs) > self.MAX_CACHED:
                self._subs.clear()
            found = {
                s["id"]: s
                for s in Subscription.objects.filter(pk__in=stale).values("id", "tenant_id", "customer_id", "rate_plan_id", "min_commitment")
            }
            for sid in stale:
                tenant_id, gen = wanted[sid]
                row = found.get(sid)
                if row is None or row["tenant_id"] != tenant_id:
                    self._subs[sid] = (gen, None)
                    continue
                rules = effective_rules(self._tenant_rules(tenant_id, gen), subscription_id=sid, rate_plan_id=row["rate_plan_id"])
                self._subs[sid] = (gen, _Sub(row["customer_id"], row["rate_plan_id"], row["min_commitment"], tuple(rules)))
        return {sid: self._subs[sid][1] for sid in wanted}

    def _model(self, version_id: int, metric: str, dimension_key: str):
        key = (version_id, metric, dimension_key)
        if key not in self._models:  # a published version's configs never change
            config = MetricConfig.objects.filter(version_id=version_id, metric__code=metric).values_list("config", flat=True).first()
            model = None
            if config is not None:
                try:
                    model = compile_config(config).for_key(dimension_key)
                except UsageError:
                    model = None
            self._models[key] = model
            if len(self._models) > self.MAX_CACHED:
                self._models.popitem(last=False)
        return self._models[key]

    # --- the batch -----------------------------------------------------------------------
    def evaluate(self, records: Sequence[Rated]) -> list[Firing]:
        """Evaluate the records; returns the firings newly recorded."""
        if not records:
            return []
        generations = catalog_generation_get_many(tenant_ids={r.tenant_id for r in records})
        watched = [
            r for r in records
            if r.tenant_id in generations and self._tenant_rules(r.tenant_id, generations[r.tenant_id])
        ]
        if not watched:
            return []
        subs = self._subscriptions({r.subscription_id: (r.tenant_id, generations[r.tenant_id]) for r in watched})
        candidates: list[Firing] = []
        spend_watch: dict[tuple[int, datetime], tuple[Rated, _Sub]] = {}
        buckets: list[anomaly.Bucketed] = []
        anomaly_keys: dict[tuple[int, str], tuple[Rated, _Sub, int]] = {}
        for r in watched:
            sub = subs.get(r.subscription_id)
            if sub is None or sub.customer_id != r.customer_id:
                continue
            counted = False
            for rule in sub.rules:
                if rule.metric is not None and rule.metric != r.metric:
                    continue
                if rule.kind in UNIT_KINDS:
                    model = self._model(r.rate_plan_version_id, r.metric, r.dimension_key)
                    if model is None:
                        continue
                    base = model.included_units() if rule.kind == "quota_percent" else (
                        model.limit.units if model.limit is not None else None
                    )
                    candidates += unit_firings(
                        rule, base=base, units_before=r.units_before, units_after=r.units_after,
                        context=_context(r, sub, metric_key=r.metric, dimension_key=r.dimension_key),
                    )
                elif rule.kind in SPEND_KINDS:
                    spend_watch[(r.subscription_id, r.period_start)] = (r, sub)
                elif rule.kind == ANOMALY and not counted:
                    counted = True
                    minute = int(r.timestamp.timestamp()) // 60
                    buckets.append(anomaly.Bucketed(r.partition, r.offset, r.subscription_id, r.metric, minute,
                                                    r.units_after - r.units_before))
                    previous = anomaly_keys.get((r.subscription_id, r.metric))
                    anomaly_keys[(r.subscription_id, r.metric)] = (r, sub, max(minute, previous[2] if previous else minute))
        if spend_watch:
            candidates += self._spend(spend_watch)
        if anomaly_keys:
            anomaly.buckets_add(buckets)
            candidates += self._anomalies(anomaly_keys)
        return self._record(candidates)

    def _spend(self, watch: dict[tuple[int, datetime], tuple[Rated, _Sub]]) -> list[Firing]:
        totals: dict[tuple[int, datetime], Decimal] = defaultdict(Decimal)
        by_metric: dict[tuple[int, datetime, str], Decimal] = defaultdict(Decimal)
        rows = (
            RunningTotal.objects.filter(
                Q(*[Q(subscription_id=sid, period_start=start) for sid, start in watch], _connector=Q.OR)
            )
            .values("subscription_id", "period_start", "metric__code")
            .annotate(spend=Sum("amount"))
        )
        for row in rows:
            key = (row["subscription_id"], row["period_start"])
            totals[key] += row["spend"]
            by_metric[(*key, row["metric__code"])] += row["spend"]
        firings = []
        for key, (r, sub) in watch.items():
            for rule in sub.rules:
                if rule.kind not in SPEND_KINDS:
                    continue
                spend = totals[key] if rule.metric is None else by_metric[(*key, rule.metric)]
                firings += spend_firings(
                    rule, spend=spend, commitment=sub.min_commitment,
                    context=_context(r, sub, metric_key=rule.metric or "", dimension_key=""),
                )
        return firings

    def _anomalies(self, keys: dict[tuple[int, str], tuple[Rated, _Sub, int]]) -> list[Firing]:
        read = anomaly.buckets_read(keys)
        firings: list[Firing] = []
        states: dict[str, tuple] = {}
        for key, (r, sub, end_minute) in keys.items():
            history, first = read.get(key, ({}, None))
            for rule in sub.rules:
                if rule.kind != ANOMALY or (rule.metric is not None and rule.metric != key[1]):
                    continue
                verdict = anomaly_verdict(
                    buckets=history, first_minute=first, end_minute=end_minute, factor=rule.factor or DEFAULT_FACTOR,
                    window=rule.window_minutes or DEFAULT_WINDOW_MINUTES,
                    baseline=rule.baseline_minutes or DEFAULT_BASELINE_MINUTES,
                    min_units=rule.min_units if rule.min_units is not None else DEFAULT_MIN_UNITS,
                )
                states[f"{rule.id}:{key[0]}:{key[1]}"] = (verdict, rule, r, sub, end_minute)
        onsets = anomaly.episode_onsets(states)
        started, ended = {}, []
        for state_key, (verdict, rule, r, sub, end_minute) in states.items():
            if verdict.anomalous and onsets.get(state_key) is None:
                started[state_key] = end_minute
                firings.append(anomaly_firing(rule, verdict, onset_minute=end_minute,
                                              context=_context(r, sub, metric_key=r.metric, dimension_key="")))
            elif not verdict.anomalous and onsets.get(state_key) is not None:
                ended.append(state_key)
        # The episode is remembered before its firing is written: a crash between the two loses
        # at most that one firing's onset to a later one, never fires one episode twice.
        anomaly.episodes_update(started, ended)
        return firings

    # --- write ---------------------------------------------------------------------------
    def _record(self, candidates: Sequence[Firing]) -> list[Firing]:
        fresh = [f for f in candidates if _key(f) not in self._fired]
        if not fresh:
            return []
        new: list[Firing] = []
        with transaction.atomic():
            with connection.cursor() as cursor:
                for f in fresh:
                    cursor.execute(_INSERT, _row(f))
                    found = cursor.fetchone()
                    if found is not None:
                        new.append(f)
                        _tell(found[0], found[1], f, sender=self.sender)
        for f in fresh:
            self._fired[_key(f)] = None
        while len(self._fired) > self.MAX_CACHED:
            self._fired.popitem(last=False)
        return new


def _context(r: Rated, sub: _Sub, *, metric_key: str, dimension_key: str) -> dict[str, Any]:
    return {
        "tenant_id": r.tenant_id, "customer_id": sub.customer_id, "subscription_id": r.subscription_id,
        "metric": metric_key or "All metrics", "metric_key": metric_key, "dimension_key": dimension_key,
        "period_start": r.period_start, "period_end": r.period_end, "currency": r.currency,
        "rated_event_id": r.rated_event_id, "event_id": r.event_id,
    }


def _key(f: Firing) -> tuple:
    return (f.rule_id, f.subscription_id, f.period_start, f.metric, f.dimension_key, f.threshold_key)


_INSERT = """
INSERT INTO notify_alertfiring (tenant_id, rule_id, kind, customer_id, subscription_id, metric, dimension_key,
    period_start, period_end, threshold_key, threshold, observed, reference, currency, rated_event_id, event_id,
    message, triggered_at)
VALUES (%(tenant_id)s, %(rule_id)s, %(kind)s, %(customer_id)s, %(subscription_id)s, %(metric)s, %(dimension_key)s,
    %(period_start)s, %(period_end)s, %(threshold_key)s, %(threshold)s, %(observed)s, %(reference)s, %(currency)s,
    %(rated_event_id)s, %(event_id)s, %(message)s, now())
ON CONFLICT ON CONSTRAINT alert_firing_once DO NOTHING
RETURNING id, triggered_at
"""


def _row(f: Firing) -> dict[str, Any]:
    row = asdict(f)
    row["message"] = row["message"][:300]
    return row


def _tell(firing_id: int, triggered_at: datetime, f: Firing, *, sender: InlineSender | None) -> None:
    webhook_event_emit(
        tenant_id=f.tenant_id, event_type="usage.anomaly" if f.kind == ANOMALY else "alert.triggered",
        event_id=f"alert:{firing_id}", data=firing_payload(firing_id, triggered_at, f), sender=sender,
    )


def firing_payload(firing_id: int, triggered_at: datetime, f: Firing) -> dict[str, Any]:
    def text(value: Decimal | None) -> str | None:
        return None if value is None else decimal_text(value)

    return {
        "alert_id": firing_id, "rule_id": f.rule_id, "kind": f.kind, "customer_id": f.customer_id,
        "subscription_id": f.subscription_id, "metric": f.metric or None, "dimension_key": f.dimension_key,
        "period_start": f.period_start.isoformat(), "period_end": f.period_end.isoformat(),
        "threshold": text(f.threshold), "observed": text(f.observed), "reference": text(f.reference),
        "currency": f.currency, "rated_event_id": f.rated_event_id, "event_id": f.event_id or None,
        "message": f.message, "triggered_at": triggered_at.isoformat(),
    }
