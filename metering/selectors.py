"""Reads of the metering app: billing contexts from the catalog (the enrichment cache's
source of truth), raw events and unmatched usage."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta

from django.db.models import Count, Q
from django.utils import timezone

from aforo.params import parse_id
from catalog.models import ApiKey, Customer, MetricConfig, RatePlanVersion, Subscription

from .contexts import BillingContext, SubscriptionContext, VersionContext, priced_metric
from .models import UnmatchedUsage


LIVE_AFTER_REVOCATION = timedelta(days=90)


def billing_contexts_build(*, tenant_id: int, subjects: Sequence[str]) -> dict[str, BillingContext]:
    """The billing context of each subject of one tenant (`key:<sha256>`, `customer:<id>`,
    `subscription:<id>`), from Postgres, in at most five queries for the whole set. Subjects
    that name nothing of this tenant are absent from the result."""
    by_kind: dict[str, list[str]] = defaultdict(list)
    for subject in subjects:
        kind, _, value = subject.partition(":")
        by_kind[kind].append(value)
    keys = list(
        ApiKey.objects.filter(tenant_id=tenant_id, key_hash__in=by_kind["key"])
        .select_related("app__team")
        .only("id", "key_hash", "revoked_at", "app_id", "app__team_id", "app__team__customer_id")
    ) if by_kind["key"] else []
    named_customers = set(
        Customer.objects.filter(tenant_id=tenant_id, pk__in=_ids(by_kind["customer"])).values_list("pk", flat=True)
    ) if by_kind["customer"] else set()
    customer_ids = {k.app.team.customer_id for k in keys} | named_customers
    subscription_ids = _ids(by_kind["subscription"])
    if not customer_ids and not subscription_ids:
        return {}
    subscriptions = list(
        Subscription.objects.filter(tenant_id=tenant_id)
        .filter(Q(customer_id__in=customer_ids) | Q(pk__in=subscription_ids))
        .order_by("id")
    )
    versions = list(
        RatePlanVersion.objects.filter(
            tenant_id=tenant_id,
            rate_plan_id__in={s.rate_plan_id for s in subscriptions},
            status=RatePlanVersion.Status.PUBLISHED,
        ).order_by("-effective_from")
    )
    metrics_by_version: dict[int, dict] = defaultdict(dict)
    for config in MetricConfig.objects.filter(tenant_id=tenant_id, version__in=versions).select_related("metric"):
        metrics_by_version[config.version_id][config.metric.code] = priced_metric(
            code=config.metric.code, metric_id=config.metric_id, metric_config_id=config.id, config=config.config
        )
    versions_by_plan: dict[int, list[VersionContext]] = defaultdict(list)
    for version in versions:
        versions_by_plan[version.rate_plan_id].append(
            VersionContext(version.id, version.effective_from, metrics_by_version[version.id])
        )
    billable: dict[int, SubscriptionContext] = {}  # paused subscriptions rate nothing
    for s in subscriptions:
        if s.status != Subscription.Status.PAUSED:
            billable[s.id] = SubscriptionContext(
                id=s.id,
                customer_id=s.customer_id,
                currency=s.currency,
                billing_mode=s.billing_mode,
                cadence=s.billing_cadence,
                anchor=s.billing_anchor,
                started_at=s.started_at,
                ended_at=s.ended_at,
                versions=tuple(versions_by_plan[s.rate_plan_id]),
                has_trial=s.has_trial,
                trial_until=min((t for t in (s.trial_ends_at, s.trial_converted_at) if t is not None), default=None),
            )
    of_customer: dict[int, tuple[SubscriptionContext, ...]] = defaultdict(tuple)
    for context in billable.values():
        of_customer[context.customer_id] += (context,)

    result: dict[str, BillingContext] = {}
    for k in keys:
        customer_id = k.app.team.customer_id
        result[f"key:{k.key_hash}"] = BillingContext(
            tenant_id=tenant_id, customer_id=customer_id, subscriptions=of_customer[customer_id],
            api_key_id=k.id, app_id=k.app_id, team_id=k.app.team_id, revoked_at=k.revoked_at,
        )
    for customer_id in named_customers:
        result[f"customer:{customer_id}"] = BillingContext(
            tenant_id=tenant_id, customer_id=customer_id, subscriptions=of_customer[customer_id]
        )
    for s in subscriptions:
        if s.id in subscription_ids:
            result[f"subscription:{s.id}"] = BillingContext(
                tenant_id=tenant_id, customer_id=s.customer_id, subscriptions=(billable[s.id],) if s.id in billable else ()
            )
    return result


def _ids(values: Sequence[str]) -> set[int]:
    return {value for value in map(parse_id, values) if value is not None}


def api_key_subjects_live() -> dict[int, list[str]]:
    """Per tenant, the subjects (`key:<sha256>`) of the API keys that can still match events."""
    cutoff = timezone.now() - LIVE_AFTER_REVOCATION
    result: dict[int, list[str]] = defaultdict(list)
    rows = ApiKey.objects.filter(Q(revoked_at__isnull=True) | Q(revoked_at__gte=cutoff)).values_list("tenant_id", "key_hash")
    for tenant_id, key_hash in rows.order_by("tenant_id", "id"):
        result[tenant_id].append(f"key:{key_hash}")
    return dict(result)


def unmatched_usage_counts(*, tenant_id: int | None) -> list[dict[str, object]]:
    """Unresolved unmatched usage by reason (on the (tenant, resolved_at) index), most first,
    each with its label. `tenant_id` None: every tenant's (a superuser)."""
    rows = UnmatchedUsage.objects.filter(resolved_at__isnull=True)
    if tenant_id is not None:
        rows = rows.filter(tenant_id=tenant_id)
    labels = dict(UnmatchedUsage.Reason.choices)
    counted = rows.values("reason").annotate(count=Count("id")).order_by("-count", "reason")
    return [{"reason": row["reason"], "label": labels.get(row["reason"], row["reason"]), "count": row["count"]} for row in counted]
