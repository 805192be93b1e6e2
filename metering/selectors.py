"""Reads of the metering app: billing contexts from the catalog (the enrichment cache's
source of truth), raw events and unmatched usage."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from django.db.models import Q
from django.utils import timezone

from catalog.models import ApiKey, MetricConfig, RatePlanVersion, Subscription

if TYPE_CHECKING:
    from .enrichment import KeyContext

LIVE_AFTER_REVOCATION = timedelta(days=90)


def key_contexts_build(*, tenant_id: int, key_hashes: Sequence[str]) -> dict[str, KeyContext]:
    """The full billing context of each given key of one tenant, from Postgres, in four queries.
    Hashes of no key of this tenant are absent from the result."""
    from .enrichment import KeyContext, SubscriptionContext, VersionContext, priced_metric

    keys = list(
        ApiKey.objects.filter(tenant_id=tenant_id, key_hash__in=list(key_hashes))
        .select_related("app__team")
        .only("id", "key_hash", "revoked_at", "app_id", "app__team_id", "app__team__customer_id")
    )
    if not keys:
        return {}
    customer_ids = {k.app.team.customer_id for k in keys}
    subscriptions = list(
        Subscription.objects.filter(tenant_id=tenant_id, customer_id__in=customer_ids)
        .exclude(status=Subscription.Status.PAUSED)
        .order_by("id")
    )
    versions = list(
        RatePlanVersion.objects.filter(
            tenant_id=tenant_id,
            rate_plan_id__in={s.rate_plan_id for s in subscriptions}, status=RatePlanVersion.Status.PUBLISHED
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
    subs_by_customer: dict[int, list[SubscriptionContext]] = defaultdict(list)
    for s in subscriptions:
        subs_by_customer[s.customer_id].append(
            SubscriptionContext(
                id=s.id,
                customer_id=s.customer_id,
                currency=s.currency,
                billing_mode=s.billing_mode,
                cadence=s.billing_cadence,
                anchor=s.billing_anchor,
                started_at=s.started_at,
                ended_at=s.ended_at,
                versions=tuple(versions_by_plan[s.rate_plan_id]),
            )
        )
    return {
        k.key_hash: KeyContext(
            tenant_id=tenant_id,
            api_key_id=k.id,
            app_id=k.app_id,
            team_id=k.app.team_id,
            customer_id=k.app.team.customer_id,
            revoked_at=k.revoked_at,
            subscriptions=tuple(subs_by_customer[k.app.team.customer_id]),
        )
        for k in keys
    }


def api_key_hashes_live() -> dict[int, list[str]]:
    """Per tenant, the hashes of keys that can still match events."""
    cutoff = timezone.now() - LIVE_AFTER_REVOCATION
    result: dict[int, list[str]] = defaultdict(list)
    rows = ApiKey.objects.filter(Q(revoked_at__isnull=True) | Q(revoked_at__gte=cutoff)).values_list("tenant_id", "key_hash")
    for tenant_id, key_hash in rows.order_by("tenant_id", "id"):
        result[tenant_id].append(key_hash)
    return dict(result)
