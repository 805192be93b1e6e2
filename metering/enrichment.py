"""The BillingHierarchyEnricher: API key → app/agent → team → customer → subscriptions →
rate plan versions → metric configs, as one `BillingContext` per event subject (an API key,
or a customer or subscription named directly), and the event-time choice of subscription,
version and config from it (`resolve`).

Lookups go through three layers, per batch, never per event:
  1. a process-local dict,
  2. ONE Redis MGET for the local misses (TTL ENRICHMENT_CACHE_TTL_S, default 10 minutes),
  3. Postgres for the Redis misses (four queries for the whole miss set), written back.
Every cache key carries the tenant's catalog generation (catalog.generation), which every
catalog change advances in its own transaction and each batch reads first: the first batch
that starts after a change commits builds fresh contexts, whatever the TTL. Unknown keys are
cached too (as "no such key") under the same rule.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

import orjson
from django.conf import settings
from django_redis import get_redis_connection

from billing.rating import Model
from catalog.generation import catalog_generation_get_many

from .contexts import BillingContext, PricedMetric, SubscriptionContext, VersionContext, priced_metric
from .selectors import billing_contexts_build

logger = logging.getLogger(__name__)


class Resolution(NamedTuple):
    context: BillingContext
    subscription: SubscriptionContext
    version_id: int
    metric: PricedMetric
    dimension_key: str  # "" unless a dimension override of the config prices the event
    model: Model  # the base config's model or the override's


class Unmatched(NamedTuple):
    reason: str
    detail: str = ""


_UNKNOWN = {
    "key": ("unknown_api_key", "no API key of this tenant has this hash"),
    "customer": ("unknown_customer", "no customer of this tenant has this id"),
    "subscription": ("unknown_subscription", "no subscription of this tenant has this id"),
}


def resolve(
    context: BillingContext | None,
    *,
    metric: str,
    at: datetime,
    subject: str,
    dimensions: Mapping[str, Any] | None = None,
) -> Resolution | Unmatched:
    """Which subscription, rate plan version, metric config and dimension price this event.

    The subscription active at `at` (started_at <= at < ended_at) whose version in force at
    `at` prices `metric`; among several, the lowest id (deterministic). Within the config, the
    most specific dimension override matching `dimensions` (its own running total), else the
    base price. `subject` (what the event named) says which kind of id was unknown when there
    is no context."""
    if context is None:
        return Unmatched(*_UNKNOWN[subject.split(":", 1)[0]])
    if context.revoked_at is not None and at >= context.revoked_at:
        return Unmatched("revoked_api_key", f"key revoked at {context.revoked_at.isoformat()}")
    active = [s for s in context.subscriptions if s.started_at <= at and (s.ended_at is None or at < s.ended_at)]
    if not active:
        return Unmatched("no_active_subscription", f"customer {context.customer_id} has no subscription active at {at.isoformat()}")
    for subscription in active:
        version = subscription.version_at(at)
        if version is not None and metric in version.metrics:
            priced = version.metrics[metric]
            key, model = priced.pricer.select(dimensions)
            return Resolution(context, subscription, version.id, priced, key, model)
    return Unmatched("metric_not_priced", f"no rate plan version in force at {at.isoformat()} prices {metric!r}")


# --- wire form (what Redis holds) --------------------------------------------------------


def context_to_wire(context: BillingContext | None) -> bytes:
    if context is None:
        return b'{"missing":true}'
    return orjson.dumps(
        {
            "t": context.tenant_id,
            "k": context.api_key_id,
            "app": context.app_id,
            "team": context.team_id,
            "c": context.customer_id,
            "revoked_at": context.revoked_at,
            "subs": [
                {
                    "id": s.id,
                    "c": s.customer_id,
                    "cur": s.currency,
                    "mode": s.billing_mode,
                    "cad": s.cadence,
                    "anchor": s.anchor,
                    "start": s.started_at,
                    "end": s.ended_at,
                    "trial": s.has_trial,
                    "trial_until": s.trial_until,
                    "versions": [
                        {
                            "id": v.id,
                            "from": v.effective_from,
                            "metrics": {
                                code: {"m": p.metric_id, "mc": p.metric_config_id, "config": p.config}
                                for code, p in v.metrics.items()
                            },
                        }
                        for v in s.versions
                    ],
                }
                for s in context.subscriptions
            ],
        }
    )


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def context_from_wire(raw: bytes) -> BillingContext | None:
    data = orjson.loads(raw)
    if data.get("missing"):
        return None
    subscriptions = tuple(
        SubscriptionContext(
            id=s["id"],
            customer_id=s["c"],
            currency=s["cur"],
            billing_mode=s["mode"],
            cadence=s["cad"],
            anchor=_dt(s["anchor"]),
            started_at=_dt(s["start"]),
            ended_at=_dt(s["end"]),
            has_trial=s.get("trial", False),
            trial_until=_dt(s.get("trial_until")),
            versions=tuple(
                VersionContext(
                    id=v["id"],
                    effective_from=_dt(v["from"]),
                    metrics={
                        code: priced_metric(code=code, metric_id=p["m"], metric_config_id=p["mc"], config=p["config"])
                        for code, p in v["metrics"].items()
                    },
                )
                for v in s["versions"]
            ),
        )
        for s in data["subs"]
    )
    return BillingContext(
        tenant_id=data["t"], customer_id=data["c"], subscriptions=subscriptions, api_key_id=data["k"],
        app_id=data["app"], team_id=data["team"], revoked_at=_dt(data["revoked_at"]),
    )


# --- the cache ----------------------------------------------------------------------------

CacheKey = tuple[int, str]  # (tenant_id, subject)


def _redis_key(tenant_id: int, generation: int, subject: str) -> str:
    return f"{settings.CACHES['default']['KEY_PREFIX']}:enrich:{tenant_id}:{generation}:{subject}"


class EnrichmentCache:
    """Per-process cache of key contexts. One instance per consumer; not thread-safe."""

    def __init__(self, *, local_max: int | None = None, ttl_s: int | None = None):
        self.local_max = local_max or settings.ENRICHMENT_LOCAL_CACHE_MAX
        self.ttl_s = ttl_s or settings.ENRICHMENT_CACHE_TTL_S
        self._local: dict[str, BillingContext | None] = {}
        self.stats = {"local": 0, "redis": 0, "postgres": 0}

    def lookup_many(
        self, keys: Iterable[CacheKey], *, generations: Mapping[int, int] | None = None
    ) -> dict[CacheKey, BillingContext | None]:
        """The context of each (tenant, subject). `generations` (each tenant's catalog
        generation) are read from PostgreSQL when not given: a caller that must not query the
        database per call (the entitlement check) passes ones it keeps itself."""
        wanted = set(keys)
        if generations is None:
            generations = catalog_generation_get_many(tenant_ids={tenant_id for tenant_id, _ in wanted})
        names = {key: _redis_key(key[0], generations[key[0]], key[1]) for key in wanted}
        found: dict[CacheKey, BillingContext | None] = {}
        local_misses = []
        for key, name in names.items():
            if name in self._local:
                found[key] = self._local[name]
            else:
                local_misses.append(key)
        self.stats["local"] += len(found)
        if not local_misses:
            return found
        redis = get_redis_connection("default")
        values = redis.mget([names[key] for key in local_misses])
        db_misses: dict[int, list[str]] = {}  # tenant -> subjects
        for key, value in zip(local_misses, values):
            if value is None:
                db_misses.setdefault(key[0], []).append(key[1])
            else:
                found[key] = self._remember(names[key], context_from_wire(value))
                self.stats["redis"] += 1
        if db_misses:
            pipe = redis.pipeline(transaction=False)
            for tenant_id, subjects in db_misses.items():
                built = billing_contexts_build(tenant_id=tenant_id, subjects=subjects)
                for subject in subjects:
                    key = (tenant_id, subject)
                    context = self._remember(names[key], built.get(subject))
                    found[key] = context
                    pipe.set(names[key], context_to_wire(context), ex=self.ttl_s)
                    self.stats["postgres"] += 1
            pipe.execute()
        return found

    def _remember(self, name: str, context: BillingContext | None) -> BillingContext | None:
        if len(self._local) >= self.local_max:
            # Entries of older generations are dead weight; drop the oldest half.
            for stale in list(self._local)[: self.local_max // 2]:
                del self._local[stale]
        self._local[name] = context
        return context


def enrichment_cache_warm(*, chunk_size: int = 500) -> int:
    """Rebuild and store the context of every API key that can still match events (active, or
    revoked less than 90 days ago), at each tenant's current generation. Returns keys written."""
    from .selectors import api_key_subjects_live

    redis = get_redis_connection("default")
    ttl = settings.ENRICHMENT_CACHE_TTL_S
    written = 0
    for tenant_id, subjects in api_key_subjects_live().items():
        generation = catalog_generation_get_many(tenant_ids=[tenant_id])[tenant_id]
        for start in range(0, len(subjects), chunk_size):
            chunk = subjects[start : start + chunk_size]
            built = billing_contexts_build(tenant_id=tenant_id, subjects=chunk)
            pipe = redis.pipeline(transaction=False)
            for subject, context in built.items():
                pipe.set(_redis_key(tenant_id, generation, subject), context_to_wire(context), ex=ttl)
            pipe.execute()
            written += len(built)
    return written
