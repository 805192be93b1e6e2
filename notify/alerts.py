"""Alert rules: their validation (the API and the admin share it) and writes.

Every field is checked with an error naming it. Thresholds are exact decimals (JSON strings or
integers, never floats), ascending and distinct: percents for quota_percent, limit_percent and
commitment_percent (0 < p <= 1000), amounts in the subscription's currency for spend_amount;
none for anomaly, whose tunables are factor (> 1), window_minutes (1–60), baseline_minutes (at
least the window, up to a day) and min_units (>= 0). A rule scopes to the tenant, one rate plan
or one subscription; one rule per (kind, metric, scope)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import IntegrityError, transaction

from aforo.exceptions import ApiError
from catalog.models import Metric, RatePlan, Subscription

from .models import AlertRule

PERCENT_KINDS = ("quota_percent", "limit_percent", "commitment_percent")
MAX_THRESHOLDS = 20
MAX_AMOUNT = Decimal("1e12")
ANOMALY_FIELDS = ("factor", "window_minutes", "baseline_minutes", "min_units")
WRITABLE = ("name", "kind", "metric", "thresholds", "rate_plan", "subscription", "is_active", *ANOMALY_FIELDS)


def _invalid(field: str, message: str) -> ApiError:
    return ApiError(code="validation_error", field=field, message=f"{field}: {message}")


def _decimal(value: Any, field: str) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _invalid(field, "an exact decimal as a string (e.g. \"80\") or an integer")
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except (InvalidOperation, ValueError):
        raise _invalid(field, f"{str(value)[:40]!r} is not a decimal number") from None
    if not number.is_finite():
        raise _invalid(field, "must be a finite number")
    return number


def _int(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _invalid(field, f"an integer from {low} to {high}")
    return value


def _thresholds(kind: str, value: Any) -> list[str]:
    if kind == AlertRule.Kind.ANOMALY:
        if value not in (None, []):
            raise _invalid("thresholds", "an anomaly rule has none (set factor, window_minutes, baseline_minutes)")
        return []
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_THRESHOLDS:
        raise _invalid("thresholds", f"a list of 1 to {MAX_THRESHOLDS} thresholds")
    numbers = [_decimal(v, "thresholds") for v in value]
    high = Decimal(1000) if kind in PERCENT_KINDS else MAX_AMOUNT
    for n in numbers:
        if not 0 < n <= high:
            what = "percent" if kind in PERCENT_KINDS else "amount"
            raise _invalid("thresholds", f"each {what} must be above 0 and at most {high:f}")
        if n.as_tuple().exponent < -6:
            raise _invalid("thresholds", "at most 6 decimal places")
    if len(set(numbers)) != len(numbers):
        raise _invalid("thresholds", "each threshold once")
    return [format(n.normalize(), "f") for n in sorted(numbers)]


def _related(model, tenant_id: int, value: Any, field: str, *, by_code: bool = False):
    if value is None:
        return None
    if by_code and isinstance(value, str):
        found = model.objects.filter(tenant_id=tenant_id, code=value[:100]).first()
    elif isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63:
        found = model.objects.filter(tenant_id=tenant_id, pk=value).first()
    else:
        raise _invalid(field, "a metric code or id" if by_code else "an id")
    if found is None:
        raise _invalid(field, f"no {field.replace('_', ' ')} {str(value)[:60]!r} in this tenant")
    return found


def alert_rule_fields(*, tenant_id: int, data: dict[str, Any], instance: AlertRule | None = None) -> dict[str, Any]:
    """The validated model fields of a rule: `data` over `instance`'s (a partial update)."""
    unknown = sorted(set(data) - set(WRITABLE))
    if unknown:
        raise _invalid(unknown[0][:40], f"not a field of an alert rule (fields: {', '.join(WRITABLE)})")
    current: dict[str, Any] = {}
    if instance is not None:
        current = {
            "name": instance.name, "kind": instance.kind, "metric": instance.metric_id, "thresholds": instance.thresholds,
            "rate_plan": instance.rate_plan_id, "subscription": instance.subscription_id, "is_active": instance.is_active,
            **{f: getattr(instance, f) for f in ANOMALY_FIELDS},
        }
    merged = {**current, **data}
    kind = merged.get("kind")
    if kind not in AlertRule.Kind.values:
        raise _invalid("kind", f"one of {list(AlertRule.Kind.values)}")
    name = merged.get("name") or ""
    if not isinstance(name, str) or len(name) > 100:
        raise _invalid("name", "text of at most 100 characters")
    fields: dict[str, Any] = {"kind": kind, "name": name, "thresholds": _thresholds(kind, merged.get("thresholds"))}
    fields["metric"] = _related(Metric, tenant_id, merged.get("metric"), "metric", by_code=True)
    if kind == AlertRule.Kind.COMMITMENT_PERCENT and fields["metric"] is not None:
        raise _invalid("metric", "a commitment is the whole subscription's: leave metric empty")
    fields["rate_plan"] = _related(RatePlan, tenant_id, merged.get("rate_plan"), "rate_plan")
    fields["subscription"] = _related(Subscription, tenant_id, merged.get("subscription"), "subscription")
    if fields["rate_plan"] is not None and fields["subscription"] is not None:
        raise _invalid("subscription", "a rule is a plan's default or a subscription's override, not both")
    is_active = merged.get("is_active", True)
    if not isinstance(is_active, bool):
        raise _invalid("is_active", "true or false")
    fields["is_active"] = is_active
    if kind == AlertRule.Kind.ANOMALY:
        factor = merged.get("factor")
        fields["factor"] = Decimal(3) if factor is None else _decimal(factor, "factor")
        if not Decimal(1) < fields["factor"] <= Decimal(1000) or fields["factor"].as_tuple().exponent < -2:
            raise _invalid("factor", "above 1 and at most 1000, to 2 decimal places")
        window = merged.get("window_minutes")
        fields["window_minutes"] = 5 if window is None else _int(window, "window_minutes", 1, 60)
        baseline = merged.get("baseline_minutes")
        fields["baseline_minutes"] = (
            60 if baseline is None else _int(baseline, "baseline_minutes", fields["window_minutes"], 1440)
        )
        min_units = merged.get("min_units")
        fields["min_units"] = Decimal(100) if min_units is None else _decimal(min_units, "min_units")
        if not 0 <= fields["min_units"] <= MAX_AMOUNT or fields["min_units"].as_tuple().exponent < -6:
            raise _invalid("min_units", "from 0 to 1e12, at most 6 decimal places")
    else:
        for field in ANOMALY_FIELDS:
            if data.get(field) is not None:
                raise _invalid(field, "only an anomaly rule has it")
            fields[field] = None
    return fields


def alert_rule_save(*, tenant_id: int, data: dict[str, Any], instance: AlertRule | None = None) -> AlertRule:
    """Create (instance None) or change a rule; 409 `duplicate_rule` when its scope has one already."""
    fields = alert_rule_fields(tenant_id=tenant_id, data=data, instance=instance)
    rule = instance or AlertRule(tenant_id=tenant_id)
    for name, value in fields.items():
        setattr(rule, name, value)
    try:
        with transaction.atomic():
            rule.save()
    except IntegrityError:
        raise ApiError(
            code="duplicate_rule", status_code=409,
            message="This scope already has a rule of this kind for this metric: change that one instead.",
        ) from None
    return rule
