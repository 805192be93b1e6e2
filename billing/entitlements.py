"""The entitlement check: may this API key (or customer) use `units` more of `metric` now?

Answered from what the consumer keeps in Redis — the billing hierarchy (metering.enrichment)
and the usage counters (billing.counters) — with no database query per check: the catalog
generation each context is keyed by is kept per process for `ENTITLEMENT_GENERATION_TTL_S`
(1 s: a catalog change reaches the check within that), and a counter hash is loaded from the
running totals only the first time a subscription-period is asked about after Redis lost it.

The decision, per the price that would rate the event now (its dimension override included):

    no limit                         allow   no_limit
    used + reserved + units <= limit allow   within_limit
    past a "bill" limit              allow   over_limit_billed   (charged as overage)
    past a "block" limit             deny    limit_reached       (would be recorded, rated at zero)
    counters unreadable (Redis down) the limit's `fail` setting: open → allow, closed → deny,
                                     reason counters_unavailable
    nothing would rate it            deny    unknown_api_key, revoked_api_key, unknown_customer,
                                             no_active_subscription, metric_not_priced

Budget leases (billing.leases) hold units back: `reserved` is what active leases of the same
(subscription, metric, dimension, period) have not used yet, read from the same counter hash,
and a limit's room is limit − used − reserved. The check itself reserves nothing: two gateways
asking at once may both be allowed the last units (leases are the exact tool for that)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from django.conf import settings
from redis.exceptions import RedisError

from aforo.exceptions import ApiError
from aforo.money import decimal_text
from catalog.generation import catalog_generation_get_many
from metering.enrichment import EnrichmentCache, Resolution, Unmatched, resolve
from metering.selectors import billing_contexts_build
from metering.validation import (
    EventRejected,
    api_key_subject,
    parse_dimensions,
    parse_quantity,
    parse_subject,
)

from .counters import counter_field, usage_counters_load, usage_counters_read
from .leases.counters import reservation_field
from .periods import period_for
from .rating.params import BILL, FAIL_CLOSED

logger = logging.getLogger(__name__)

MAX_CHECKS = 1000
ZERO = Decimal(0)


class CheckRequest(NamedTuple):
    subject: str  # key:<sha256> or customer:<id>
    metric: str
    units: Decimal
    dimensions: dict[str, str]


@dataclass(frozen=True)
class Decision:
    allow: bool
    reason: str
    metric: str
    limit: Decimal | None = None
    used: Decimal | None = None
    reserved: Decimal | None = None  # units held by budget leases, not rated yet
    remaining: Decimal | None = None
    resets_at: datetime | None = None
    overage: str | None = None
    subscription_id: int | None = None
    dimension_key: str = ""
    degraded: bool = False

    def as_dict(self) -> dict[str, Any]:
        def number(value: Decimal | None) -> str | None:
            return None if value is None else decimal_text(value)

        return {
            "allow": self.allow, "reason": self.reason, "metric": self.metric, "limit": number(self.limit),
            "used": number(self.used), "reserved": number(self.reserved), "remaining": number(self.remaining),
            "resets_at": None if self.resets_at is None else self.resets_at.isoformat().replace("+00:00", "Z"),
            "overage": self.overage, "subscription_id": self.subscription_id, "dimension_key": self.dimension_key,
            "degraded": self.degraded,
        }


def check_parse(raw: Any) -> CheckRequest:
    """One check of the request body, validated as the event contract validates the same fields
    (api_key or customer_id; metric; units a decimal ≥ 0, default 1; dimensions). Raises
    EventRejected (code, field, message)."""
    if not isinstance(raw, dict):
        raise EventRejected("not_an_object", None, "each check must be a JSON object")
    unknown = sorted(set(raw) - {"api_key", "customer_id", "metric", "units", "dimensions"})
    if unknown:
        raise EventRejected(
            "unknown_field", unknown[0], f"{unknown[0]!r} is not part of a check; send api_key or customer_id, metric, "
            "units, dimensions"
        )
    subject = parse_subject(raw)
    metric = raw.get("metric")
    if not isinstance(metric, str) or not metric.strip() or len(metric) > 100 or not metric.isprintable():
        raise EventRejected("invalid_metric", "metric", "metric must be a metric code (a printable string of 1–100 characters)")
    units = parse_quantity(raw["units"]) if raw.get("units") is not None else Decimal(1)
    dimensions = parse_dimensions(raw.get("dimensions"))
    name = "api_key" if "api_key" in subject else "customer_id"
    return CheckRequest(
        api_key_subject(subject["api_key"]) if name == "api_key" else f"customer:{subject['customer_id']}",
        metric, units, dimensions,
    )


class _Generations:
    """Each tenant's catalog generation, re-read from PostgreSQL at most once per TTL per process."""

    def __init__(self) -> None:
        self._seen: dict[int, tuple[int, float]] = {}

    def get(self, tenant_id: int) -> int:
        now = time.monotonic()
        seen = self._seen.get(tenant_id)
        if seen is None or now - seen[1] > settings.ENTITLEMENT_GENERATION_TTL_S:
            generation = catalog_generation_get_many(tenant_ids=[tenant_id]).get(tenant_id, 0)
            seen = self._seen[tenant_id] = (generation, now)
        return seen[0]


_generations = _Generations()
_local = threading.local()


def _cache() -> EnrichmentCache:
    cache = getattr(_local, "cache", None)
    if cache is None:
        cache = _local.cache = EnrichmentCache()
    return cache


def _contexts(tenant_id: int, subjects: set[str]) -> Mapping[tuple[int, str], Any]:
    keys = {(tenant_id, subject) for subject in subjects}
    try:
        return _cache().lookup_many(keys, generations={tenant_id: _generations.get(tenant_id)})
    except RedisError as error:  # the hierarchy from PostgreSQL: slower, still exact
        logger.warning("entitlement check: enrichment cache unavailable (%s); reading the catalog", error)
        built = billing_contexts_build(tenant_id=tenant_id, subjects=sorted(subjects))
        return {(tenant_id, subject): built.get(subject) for subject in subjects}


def _counters(subscription_id: int, start: datetime, end: datetime, fields: list[str]):
    """The counters of `fields`, loading the hash once if Redis lost it; None if Redis fails."""
    try:
        counters = usage_counters_read(subscription_id=subscription_id, period_start=start, fields=fields)
        if counters is None:
            usage_counters_load(subscription_id=subscription_id, period_start=start, period_end=end)
            counters = usage_counters_read(subscription_id=subscription_id, period_start=start, fields=fields)
        return counters
    except RedisError as error:
        logger.warning("entitlement check: usage counters unavailable: %s", error)
        return None


def _decide(
    request: CheckRequest, resolution: Resolution, used: Decimal | None, end: datetime, reserved: Decimal = ZERO
) -> Decision:
    limit = resolution.model.limit
    common = {
        "metric": request.metric, "resets_at": end, "subscription_id": resolution.subscription.id,
        "dimension_key": resolution.dimension_key,
    }
    if used is None:  # counters unreadable
        allow = limit is None or limit.fail != FAIL_CLOSED
        return Decision(
            allow, "counters_unavailable", limit=None if limit is None else limit.units,
            overage=None if limit is None else limit.overage, degraded=True, **common,
        )
    if limit is None:
        return Decision(True, "no_limit", used=used, **common)
    remaining = max(limit.units - used - reserved, ZERO)
    within = used + reserved + request.units <= limit.units
    if within:
        reason, allow = "within_limit", True
    elif limit.overage == BILL:
        reason, allow = "over_limit_billed", True
    else:
        reason, allow = "limit_reached", False
    return Decision(
        allow, reason, limit=limit.units, used=used, reserved=reserved, remaining=remaining, overage=limit.overage,
        **common,
    )


_periods: dict[tuple[int, str, datetime], tuple[datetime, datetime]] = {}


def _period(sub, now: datetime) -> tuple[datetime, datetime]:
    """The subscription's period containing `now`, remembered until it ends (period_for is ~20 µs)."""
    key = (sub.id, sub.cadence, sub.anchor)
    period = _periods.get(key)
    if period is None or not period[0] <= now < period[1]:
        if len(_periods) > 100_000:
            _periods.clear()
        period = _periods[key] = period_for(cadence=sub.cadence, anchor=sub.anchor, at=now)
    return period


def entitlements_check(*, tenant_id: int, requests: Sequence[CheckRequest], now: datetime) -> list[Decision]:
    """Decide every request at `now` (see the module docstring), reading each subscription-period's
    counters once."""
    contexts = _contexts(tenant_id, {r.subject for r in requests})
    resolved: list[Resolution | Unmatched] = [
        resolve(contexts[(tenant_id, r.subject)], metric=r.metric, at=now, subject=r.subject, dimensions=r.dimensions)
        for r in requests
    ]
    groups: dict[tuple[int, datetime, datetime], list[int]] = {}
    for index, resolution in enumerate(resolved):
        if isinstance(resolution, Resolution):
            start, end = _period(resolution.subscription, now)
            groups.setdefault((resolution.subscription.id, start, end), []).append(index)
    used: dict[int, Decimal | None] = {}
    reserved: dict[int, Decimal] = {}
    for (subscription_id, start, end), indexes in groups.items():
        keys = [(resolved[i].metric.metric_id, resolved[i].dimension_key) for i in indexes]  # type: ignore[union-attr]
        fields = [counter_field(*key) for key in keys] + [reservation_field(*key) for key in keys]
        counters = _counters(subscription_id, start, end, fields)
        for position, index in enumerate(indexes):
            used[index] = None if counters is None else counters[position].units  # type: ignore[index, union-attr]
            reserved[index] = ZERO if counters is None else counters[len(indexes) + position].units  # type: ignore[index, union-attr]
    decisions = []
    for index, (request, resolution) in enumerate(zip(requests, resolved)):
        if isinstance(resolution, Unmatched):
            decisions.append(Decision(False, resolution.reason, metric=request.metric))
            continue
        decisions.append(
            _decide(request, resolution, used[index], _period(resolution.subscription, now)[1], reserved[index])
        )
    return decisions


def _parsed(raw: Any) -> CheckRequest | dict[str, Any]:
    try:
        return check_parse(raw)
    except EventRejected as error:
        return {"code": error.code, "field": error.field, "message": error.message}


def entitlements_answer(*, tenant_id: int, body: Any, now: datetime) -> dict[str, Any]:
    """The answer to a request body (parsed JSON): one check (an object) → its decision; many
    ({"checks": [...]}, up to MAX_CHECKS) → {"results": [...]} in order, an invalid check as
    {"error": {code, field, message}} beside the decided ones. Raises ApiError for a body that is
    neither, or for the single check's own error. Shared by the DRF view (billing.api.entitlements)
    and the WSGI fast path (billing.api.entitlements_wsgi), so both answer alike."""
    if isinstance(body, dict) and "checks" in body:
        items = body["checks"]
        if not isinstance(items, list):
            raise ApiError(code="invalid_body", message='"checks" must be an array of checks.', field="checks")
        if not items:
            raise ApiError(code="empty_batch", message="The batch holds no checks.", field="checks")
        if len(items) > MAX_CHECKS:
            raise ApiError(
                code="batch_too_large", message=f"A batch holds at most {MAX_CHECKS} checks; this one has {len(items)}.",
                status_code=413,
            )
        parsed = [_parsed(item) for item in items]
        valid = [p for p in parsed if isinstance(p, CheckRequest)]
        decisions = iter(entitlements_check(tenant_id=tenant_id, requests=valid, now=now) if valid else [])
        return {"results": [next(decisions).as_dict() if isinstance(p, CheckRequest) else {"error": p} for p in parsed]}
    if not isinstance(body, dict):
        raise ApiError(code="invalid_body", message='Send one check object or {"checks": [...]}.')
    check = _parsed(body)
    if isinstance(check, dict):
        raise ApiError(code=check["code"], message=check["message"], field=check["field"])
    [decision] = entitlements_check(tenant_id=tenant_id, requests=[check], now=now)
    return decision.as_dict()
