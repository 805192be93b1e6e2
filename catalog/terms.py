"""A subscription's settlement terms, effective-dated (SubscriptionTermsVersion): adding a version,
the version governing a period, and keeping the subscription's copy of the version in effect now.

Rules (the same as discounts and tax rates, billing.terms, and prices, catalog.models.pricing):
- Versions are append-only: a change is a new version, from a moment (`effective_from`).
- The version governing a billing period is the one in effect at its start — the latest
  `effective_from` <= max(period start, started_at), the later created of two at one instant;
  before the first version, the first. A version added mid-period so first governs the NEXT
  period (`first_period` says which); the period it was added in keeps its terms.
- A new version may not take effect before the start of the current billing period (the one
  containing now): the periods before it are over, maybe settled, and keep their terms. A
  correction says `retroactive=True`; the issued invoices stay as they are until the operator
  voids and reissues them (a reissue settles under the version governing its period now).
- The subscription's own fields (TERMS_FIELDS) copy the version in effect NOW (`terms_version`),
  for what acts in real time (threshold invoices, spend alerts); settlement reads the version
  governing the period instead. A version that takes effect later is copied when it does
  (subscription_terms_sync, every minute, and whenever a version is added).
- A subscription without any version (created before it got one through a service) has its
  fields as its only terms; its first version copies them (the baseline) before the change.

Checked and written under the subscription's row lock, the lock settlement holds, so a
settlement sees the terms before the change or after it, never half of it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from aforo.periods import period_for

from .models import TERMS_FIELDS, Metric, MetricConfig, Subscription, SubscriptionTermsVersion

MAX_MINIMUM = Decimal(10) ** 14
MAX_REASON = 500


class TermsRetroactive(Exception):
    """A version effective before the current billing period, without `retroactive`."""

    def __init__(self, *, effective_from: datetime, period_start: datetime) -> None:
        self.effective_from, self.period_start = effective_from, period_start
        super().__init__(
            f"effective_from {effective_from.isoformat()} is before the current billing period "
            f"(from {period_start.isoformat()}): the periods before it keep the terms they were settled with. "
            "To correct them, send retroactive: true, then void and reissue their invoices."
        )


@dataclass(frozen=True)
class TermsVersionAdded:
    version: SubscriptionTermsVersion
    first_period: tuple[datetime, datetime]  # the first billing period the version governs
    created: bool = True  # False: the version in effect then has these terms already (a retry): it is returned


# --- selectors ---------------------------------------------------------------------------------


def terms_version_governing(*, versions: list[SubscriptionTermsVersion], at: datetime) -> SubscriptionTermsVersion | None:
    """Of `versions` (one subscription's), the one in effect at `at`: the latest effective_from
    <= at (the later created of two at one instant); before the first, the first. Pure."""
    if not versions:
        return None
    ordered = sorted(versions, key=lambda v: (v.effective_from, v.pk or 0))
    in_effect = [v for v in ordered if v.effective_from <= at]
    return in_effect[-1] if in_effect else ordered[0]


def terms_version_at(*, subscription: Subscription, at: datetime) -> SubscriptionTermsVersion | None:
    """The version of `subscription` in effect at `at` (None: it has no version)."""
    in_effect = (
        SubscriptionTermsVersion.objects.filter(subscription_id=subscription.pk, effective_from__lte=at)
        .order_by("-effective_from", "-id").first()
    )
    if in_effect is not None:
        return in_effect
    return SubscriptionTermsVersion.objects.filter(subscription_id=subscription.pk).order_by("effective_from", "id").first()


def terms_version_for_period(*, subscription: Subscription, period_start: datetime) -> SubscriptionTermsVersion | None:
    """The version governing the billing period starting at `period_start`."""
    return terms_version_at(subscription=subscription, at=max(period_start, subscription.started_at))


def terms_first_period(*, subscription: Subscription, effective_from: datetime) -> tuple[datetime, datetime]:
    """The first billing period a version effective from `effective_from` governs: the one
    starting at it, else the next one (a period's terms are those in effect at its start)."""
    at = max(effective_from, subscription.started_at)
    start, end = period_for(cadence=subscription.billing_cadence, anchor=subscription.billing_anchor, at=at)
    if start >= at or effective_from <= subscription.started_at:
        return start, end
    return period_for(cadence=subscription.billing_cadence, anchor=subscription.billing_anchor, at=end)


def current_period_start(*, subscription: Subscription, now: datetime) -> datetime:
    """The start of the billing period containing now (the subscription's first, before it starts)."""
    at = max(now, subscription.started_at)
    return period_for(cadence=subscription.billing_cadence, anchor=subscription.billing_anchor, at=at)[0]


# --- validation --------------------------------------------------------------------------------


def metric_minimums_clean(*, rate_plan_id: int, value: Any) -> dict[str, str]:
    """{metric_code: "amount"} normalised, or a ValidationError naming `metric_minimums`: an
    object of metric codes priced by the subscription's rate plan (any version) to exact
    decimals (strings or integers, never floats) from 0, at most 6 places, under 10^14."""
    if not isinstance(value, dict):
        raise ValidationError({"metric_minimums": 'Must be an object {"metric_code": "amount"}.'})
    if len(value) > 200:
        raise ValidationError({"metric_minimums": "At most 200 metrics."})
    known = set(
        Metric.objects.filter(
            pk__in=MetricConfig.objects.filter(version__rate_plan_id=rate_plan_id).values("metric_id")
        ).values_list("code", flat=True)
    )
    cleaned: dict[str, str] = {}
    for code, raw in value.items():
        shown = repr(code[:40]) if isinstance(code, str) else repr(code)
        if code not in known:
            raise ValidationError({"metric_minimums": f"{shown} is not a metric priced by the subscription's rate plan."})
        amount = _exact(raw)
        if amount is None:
            raise ValidationError({"metric_minimums": f"{shown}: must be a decimal string such as \"50.00\" or an "
                                                      "integer from 0 (not a JSON float), at most 6 decimal places, "
                                                      "under 10^14."})
        cleaned[code] = format(amount.normalize(), "f")  # one text per value: "25.50" is "25.5"
    return dict(sorted(cleaned.items()))


def _exact(raw: Any) -> Decimal | None:
    if isinstance(raw, bool) or not isinstance(raw, (str, int)) or (isinstance(raw, str) and len(raw) > 40):
        return None
    try:
        amount = Decimal(raw.strip() if isinstance(raw, str) else raw)
    except InvalidOperation:
        return None
    if not amount.is_finite() or amount < 0 or amount >= MAX_MINIMUM or amount.as_tuple().exponent < -6:  # type: ignore[operator]
        return None
    return amount


def _reason(reason: Any) -> str:
    text = reason.strip() if isinstance(reason, str) else ""
    if len(text) > MAX_REASON:
        raise ValidationError({"reason": f"At most {MAX_REASON} characters."})
    if "\x00" in text:
        raise ValidationError({"reason": "Null characters are not allowed."})
    return text


# --- services ----------------------------------------------------------------------------------


def _copy_of(subscription: Subscription) -> dict[str, Any]:
    return {name: getattr(subscription, name) for name in TERMS_FIELDS}


def _version(subscription: Subscription, *, effective_from: datetime, values: dict[str, Any], reason: str,
             retroactive: bool = False, created_at: datetime | None = None) -> SubscriptionTermsVersion:
    version = SubscriptionTermsVersion(
        tenant_id=subscription.tenant_id, subscription=subscription, effective_from=effective_from, reason=reason,
        retroactive=retroactive, **values, **({"created_at": created_at} if created_at else {}),
    )
    version.metric_minimums = version.metric_minimums or {}
    version.full_clean()
    version.save()
    return version


def terms_version_baseline(*, subscription: Subscription) -> SubscriptionTermsVersion:
    """The subscription's first version, copying its fields, effective from its start; the
    existing one if it has versions. The caller holds the subscription's row lock (or created it)."""
    existing = terms_version_at(subscription=subscription, at=subscription.started_at)
    if existing is not None:
        return existing
    # created_at: the subscription's — these terms governed every run made since it was created.
    version = _version(subscription, effective_from=subscription.started_at, values=_copy_of(subscription),
                       reason="The subscription's terms at creation", created_at=subscription.created_at)
    Subscription.objects.filter(pk=subscription.pk).update(terms_version=version)
    subscription.terms_version = version
    return version


def terms_version_add(
    *, subscription: Subscription, values: dict[str, Any], effective_from: datetime | None = None, reason: str = "",
    retroactive: bool = False, now: datetime | None = None,
) -> TermsVersionAdded:
    """Add a version of `subscription`'s terms from `effective_from` (default now): `values`
    (field → value, of TERMS_FIELDS) over those of the version in effect at that instant.
    Raises TermsRetroactive for an instant before the current billing period unless
    `retroactive`, ValidationError naming the field for an invalid value. Copies the version
    onto the subscription when it is in effect now. Terms the version in effect at that instant
    has already add nothing (a retry finds the version it added). One transaction, under the
    row lock."""
    now = now or timezone.now()
    effective_from = effective_from or now
    unknown = set(values) - set(TERMS_FIELDS)
    if unknown:
        raise ValidationError({sorted(unknown)[0]: "Not a settlement term."})
    reason = _reason(reason)
    with transaction.atomic():
        locked = Subscription.objects.select_for_update().get(pk=subscription.pk)
        period_start = current_period_start(subscription=locked, now=now)
        if effective_from < period_start and not retroactive:
            raise TermsRetroactive(effective_from=effective_from, period_start=period_start)
        if "metric_minimums" in values:
            values = {**values, "metric_minimums": metric_minimums_clean(rate_plan_id=locked.rate_plan_id, value=values["metric_minimums"])}
        terms_version_baseline(subscription=locked)
        base = terms_version_at(subscription=locked, at=effective_from)
        merged = {name: getattr(base, name) for name in TERMS_FIELDS}
        if {**merged, **values} == merged:  # changes nothing (a retried request): no version
            return TermsVersionAdded(
                version=base, first_period=terms_first_period(subscription=locked, effective_from=base.effective_from),
                created=False,
            )
        version = _version(locked, effective_from=effective_from, values={**merged, **values}, reason=reason,
                           retroactive=effective_from < period_start)
        _sync(locked, now=now)
    subscription.refresh_from_db()
    return TermsVersionAdded(version=version, first_period=terms_first_period(subscription=locked, effective_from=effective_from))


def _sync(locked: Subscription, *, now: datetime) -> bool:
    """Copy the version in effect now onto the (locked) subscription, if it is not the copy."""
    current = terms_version_at(subscription=locked, at=now)
    if current is None or current.pk == locked.terms_version_id:
        return False
    for name in TERMS_FIELDS:
        setattr(locked, name, getattr(current, name))
    locked.terms_version = current
    locked.save(update_fields=[*TERMS_FIELDS, "terms_version", "updated_at"])
    return True


def subscription_terms_sync(*, now: datetime | None = None, limit: int = 500) -> int:
    """Copy onto each subscription the version that has come into effect since its copy was
    made (a version added for a later instant). One query finds them; each is then locked and
    re-checked. Returns how many were updated."""
    now = now or timezone.now()
    versions, subscriptions = SubscriptionTermsVersion._meta.db_table, Subscription._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT DISTINCT s.id FROM {subscriptions} s
                JOIN {versions} v ON v.subscription_id = s.id AND v.effective_from <= %s
                LEFT JOIN {versions} c ON c.id = s.terms_version_id
                WHERE c.id IS NULL OR (v.effective_from, v.id) > (c.effective_from, c.id)
                ORDER BY s.id LIMIT %s""",
            [now, limit],
        )
        due = [row[0] for row in cursor.fetchall()]
    updated = 0
    for subscription_id in due:
        with transaction.atomic():
            locked = Subscription.objects.select_for_update().get(pk=subscription_id)
            updated += _sync(locked, now=now)
    return updated


def _priced_only(rate_plan_id: int, minimums: dict) -> dict:
    known = set(
        Metric.objects.filter(
            pk__in=MetricConfig.objects.filter(version__rate_plan_id=rate_plan_id).values("metric_id")
        ).values_list("code", flat=True)
    )
    return {code: amount for code, amount in (minimums or {}).items() if code in known}


def terms_versions_carry_over(*, old: Subscription, new: Subscription, at: datetime, now: datetime) -> None:
    """A plan change (billing.plan_change): `new` starts at `at` with the terms `old` has in effect
    there (its first version), and the versions `old` has for later instants — each with the
    metric minimums of metrics the new plan prices (a minimum of a metric it does not price would
    true up a charge that can never accrue). The caller holds both rows' locks."""
    source = terms_version_at(subscription=old, at=at)
    later = [] if source is None else list(
        SubscriptionTermsVersion.objects.filter(subscription_id=old.pk, effective_from__gt=at).order_by("effective_from", "id")
    )
    first = {name: getattr(source or old, name) for name in TERMS_FIELDS}
    first["metric_minimums"] = _priced_only(new.rate_plan_id, first["metric_minimums"])
    version = _version(new, effective_from=at, values=first, reason=f"Carried over from subscription {old.pk} (plan change)")
    Subscription.objects.filter(pk=new.pk).update(terms_version=version, **first)
    for carried in later:
        values = {name: getattr(carried, name) for name in TERMS_FIELDS}
        values["metric_minimums"] = _priced_only(new.rate_plan_id, values["metric_minimums"])
        _version(new, effective_from=carried.effective_from, values=values, reason=carried.reason)
    new.refresh_from_db()
    _sync(new, now=now)
