"""Price backtesting: what each customer would have paid for one metric under a candidate price,
over the rated ledger of a range of months, against what they were charged — per customer and
period, per customer, totals per currency and the distribution of the changes.

    pricing_backtest(tenant_id=…, config={...}, metric="api_calls", plan=None, start="2026-01", end="2026-03")

POST /api/v1/pricing/backtest, `manage.py backtest` and the admin's "Price backtest" page answer
through it. Reads only (lock/read → pure plan, no write): read.py groups the ledger in SQL,
plan.py prices the groups with the engine once per key (per event only for a per-transaction
candidate) and summarises. A period is in the range when its start is: periods starting in the
months [from, to], UTC."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg.errors
from django.db import connection, transaction

from billing.rating import ConfigError, compile_config, validate_config
from catalog.models import Metric, RatePlan

from . import read
from .plan import backtest_summary, idle_price, periods_price

MAX_MONTHS = 24  # a synchronous answer: at most two years of periods per backtest


class BacktestInputError(ValueError):
    """A backtest that cannot run: a stable `code`, the `field` at fault (a path into the request
    body, "config.tiers[1].up_to"), and the HTTP status an API answers it with."""

    def __init__(self, *, code: str, field: str, message: str, status: int = 400):
        super().__init__(f"{field}: {message}")
        self.code = code
        self.field = field
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class BacktestRequest:
    tenant_id: int
    config: dict[str, Any]
    metric: Metric
    rate_plan_id: int | None
    start: datetime  # the first month's first instant, UTC
    end: datetime  # the instant after the last month
    months: tuple[str, str]


def _month(value: Any, field: str) -> datetime:
    if not isinstance(value, str) or len(value) != 7:
        raise BacktestInputError(code="invalid_range", field=field, message="must be a month as YYYY-MM, e.g. 2026-10")
    try:
        month = datetime.strptime(value, "%Y-%m")
    except ValueError:
        raise BacktestInputError(code="invalid_range", field=field, message=f"must be a month as YYYY-MM, got {value!r}") from None
    return month.replace(tzinfo=UTC)


def _next_month(month: datetime) -> datetime:
    return month.replace(year=month.year + month.month // 12, month=month.month % 12 + 1)


def backtest_request(*, tenant_id: int, config: Any, metric: Any, plan: Any = None, start: Any, end: Any) -> BacktestRequest:
    """The request validated (the config by the metric configs' validator), or BacktestInputError."""
    if config is None:
        raise BacktestInputError(code="invalid_config", field="config", message="is required: the candidate price")
    try:
        normalised = validate_config(config)
    except ConfigError as error:
        field = "config" if error.field == "config" else f"config.{error.field}"
        raise BacktestInputError(code="invalid_config", field=field, message=error.message) from None
    if not isinstance(metric, str) or not 1 <= len(metric) <= 100:
        raise BacktestInputError(code="invalid_metric", field="metric", message="is required: a metric code, e.g. api_calls")
    found = Metric.objects.filter(tenant_id=tenant_id, code=metric).first()
    if found is None:
        raise BacktestInputError(code="not_found", field="metric", message=f"no metric {metric!r} in this tenant", status=404)
    if plan is not None:
        if isinstance(plan, bool) or not isinstance(plan, int) or not 1 <= plan < 2**63:
            raise BacktestInputError(code="invalid_plan", field="plan", message="must be a rate plan id (an integer)")
        if not RatePlan.objects.filter(tenant_id=tenant_id, pk=plan).exists():
            raise BacktestInputError(code="not_found", field="plan", message=f"no rate plan {plan} in this tenant", status=404)
    first, last = _month(start, "from"), _month(end, "to")
    if last < first:
        raise BacktestInputError(code="invalid_range", field="to", message=f"must not be before from ({start})")
    if (last.year - first.year) * 12 + last.month - first.month >= MAX_MONTHS:
        raise BacktestInputError(code="invalid_range", field="to", message=f"a backtest covers at most {MAX_MONTHS} months")
    return BacktestRequest(
        tenant_id=tenant_id, config=normalised, metric=found, rate_plan_id=plan, start=first, end=_next_month(last),
        months=(start, end),
    )


def pricing_backtest(
    *, tenant_id: int, config: Any, metric: Any, plan: Any = None, start: Any, end: Any, timeout_s: int | None = None
) -> dict[str, Any]:
    """What `metric`'s usage of periods starting in the months [start, end] (YYYY-MM, UTC),
    of the subscriptions on rate plan `plan` (any: None), would have cost under `config`, against
    what it was charged. Raises BacktestInputError; with `timeout_s`, a read taking longer is
    cancelled and answered as `backtest_too_large` (narrow the range)."""
    request = backtest_request(tenant_id=tenant_id, config=config, metric=metric, plan=plan, start=start, end=end)
    book = compile_config(request.config)
    scope = {
        "tenant_id": tenant_id, "metric_id": request.metric.pk, "rate_plan_id": request.rate_plan_id,
        "start": request.start, "end": request.end,
    }
    per_transaction = any(model.uses_events for model in (book.base, *(o.model for o in book.overrides)))
    try:
        with transaction.atomic():
            if timeout_s is not None:
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL statement_timeout = %s", [f"{int(timeout_s)}s"])
            groups = read.usage_groups(**scope, candidate=book)
            snapshots = read.newest_configs(event_ids={group.newest_id for group in groups})
            events = read.transactions(**scope, candidate=book) if per_transaction and groups else None
            idle = read.idle_periods(
                tenant_id=tenant_id, metric_code=request.metric.code, rate_plan_id=request.rate_plan_id,
                start=request.start, end=request.end, seen={(g.subscription_id, g.period_start) for g in groups},
            )
            names = read.customer_names(
                tenant_id=tenant_id, customer_ids={g.customer_id for g in groups} | {row[1] for row in idle}
            )
    except psycopg.errors.QueryCanceled:
        raise BacktestInputError(
            code="backtest_too_large", field="to", status=422,
            message=f"reading the range took longer than {timeout_s} s: narrow the months or pick a plan",
        ) from None
    results = periods_price(groups=groups, snapshots=snapshots, candidate=book, transactions=events)
    results = sorted([*results, *idle_price(idle=idle, candidate=book)], key=lambda r: (r.subscription_id, r.period_start))
    return {
        "metric": request.metric.code, "plan": request.rate_plan_id, "from": request.months[0], "to": request.months[1],
        "periods_from": request.start.isoformat(), "periods_before": request.end.isoformat(), "config": request.config,
        "events": sum(group.events for group in groups), "priced_per_transaction": per_transaction,
        **backtest_summary(results=results, customer_names=names),
    }
