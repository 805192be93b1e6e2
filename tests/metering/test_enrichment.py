"""The billing hierarchy enricher: event-time resolution, the three cache layers, and
invalidation by catalog generation (never serving a stale context after a change commits)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from catalog import services
from catalog.models import Subscription
from metering.enrichment import EnrichmentCache, Resolution, enrichment_cache_warm, resolve
from metering.validation import api_key_subject
from metering.tasks import enrichment_cache_warm as enrichment_cache_warm_task
from tests.factories import MetricFactory, priced_setup

pytestmark = pytest.mark.django_db
KEY = "key:"  # these events carry an API key


def lookup(cache, setup, secret=None):
    key = (setup.tenant.id, api_key_subject(secret or setup.api_key))
    return cache.lookup_many([key])[key]


def test_resolves_the_whole_hierarchy():
    setup = priced_setup(rate="0.01")
    context = lookup(EnrichmentCache(), setup)
    assert (context.tenant_id, context.customer_id, context.app_id) == (setup.tenant.id, setup.customer.id, setup.app.id)
    resolution = resolve(context, subject=KEY, metric=setup.metric.code, at=timezone.now())
    assert isinstance(resolution, Resolution)
    assert resolution.subscription.id == setup.subscription.id
    assert resolution.version_id == setup.version.id
    assert resolution.metric.metric_config_id == setup.metric_config.id
    assert resolution.metric.pricer.quote(Decimal(3)) == Decimal("0.03")


def test_unmatched_reasons():
    setup = priced_setup()
    now = timezone.now()
    assert resolve(None, subject=KEY, metric="x", at=now).reason == "unknown_api_key"
    context = lookup(EnrichmentCache(), setup)
    assert resolve(context, subject=KEY, metric="not_a_priced_metric", at=now).reason == "metric_not_priced"
    before_start = setup.subscription.started_at - timedelta(seconds=1)
    assert resolve(context, subject=KEY, metric=setup.metric.code, at=before_start).reason == "no_active_subscription"


def test_revoked_key_still_bills_events_from_before_the_revocation(django_capture_on_commit_callbacks):
    setup = priced_setup()
    revoked_at = timezone.now() - timedelta(hours=1)
    with django_capture_on_commit_callbacks(execute=True):
        services.api_key_revoke(api_key=setup.app.api_keys.get(), reason="leaked", revoked_by="test", at=revoked_at)
    context = lookup(EnrichmentCache(), setup)
    assert isinstance(resolve(context, subject=KEY, metric=setup.metric.code, at=revoked_at - timedelta(minutes=1)), Resolution)
    assert resolve(context, subject=KEY, metric=setup.metric.code, at=revoked_at).reason == "revoked_api_key"


def test_ended_and_paused_subscriptions_do_not_match(django_capture_on_commit_callbacks):
    setup = priced_setup()
    ended_at = timezone.now() - timedelta(days=1)
    with django_capture_on_commit_callbacks(execute=True):
        setup.subscription.ended_at = ended_at
        setup.subscription.save()
    context = lookup(EnrichmentCache(), setup)
    assert isinstance(resolve(context, subject=KEY, metric=setup.metric.code, at=ended_at - timedelta(seconds=1)), Resolution)
    assert resolve(context, subject=KEY, metric=setup.metric.code, at=ended_at).reason == "no_active_subscription"
    with django_capture_on_commit_callbacks(execute=True):
        setup.subscription.status = Subscription.Status.PAUSED
        setup.subscription.save()
    context = lookup(EnrichmentCache(), setup)
    assert resolve(context, subject=KEY, metric=setup.metric.code, at=ended_at - timedelta(seconds=1)).reason == "no_active_subscription"


def test_the_version_in_force_at_the_event_timestamp_prices_it(django_capture_on_commit_callbacks):
    setup = priced_setup(rate="1")
    switch = timezone.now() - timedelta(days=10)
    with django_capture_on_commit_callbacks(execute=True):
        draft = services.rate_plan_version_revise(version=setup.version, effective_from=switch)
        services.metric_config_set(version=draft, metric=setup.metric, config={"model": "per_unit", "rate": "2"})
        services.rate_plan_version_publish(version=draft)
    context = lookup(EnrichmentCache(), setup)
    old = resolve(context, subject=KEY, metric=setup.metric.code, at=switch - timedelta(microseconds=1))
    new = resolve(context, subject=KEY, metric=setup.metric.code, at=switch)
    assert (old.version_id, old.metric.pricer.quote(Decimal(1))) == (setup.version.id, Decimal(1))
    assert (new.version_id, new.metric.pricer.quote(Decimal(1))) == (draft.id, Decimal(2))


def test_cache_layers_local_then_redis_then_postgres():
    setup = priced_setup()
    first = EnrichmentCache()
    lookup(first, setup)
    assert first.stats == {"local": 0, "redis": 0, "postgres": 1}
    lookup(first, setup)
    assert first.stats["local"] == 1
    second = EnrichmentCache()  # another consumer process: Redis has it now
    lookup(second, setup)
    assert second.stats == {"local": 0, "redis": 1, "postgres": 0}


def test_a_committed_catalog_change_invalidates_every_layer(django_capture_on_commit_callbacks):
    setup = priced_setup(rate="1")
    cache = EnrichmentCache()
    assert resolve(lookup(cache, setup), subject=KEY, metric="new_metric", at=timezone.now()).reason == "metric_not_priced"
    with django_capture_on_commit_callbacks(execute=True):
        draft = services.rate_plan_version_revise(version=setup.version, effective_from=timezone.now() - timedelta(seconds=1))
        services.metric_config_set(
            version=draft,
            metric=MetricFactory(tenant=setup.tenant, product=setup.metric.product, code="new_metric"),
            config={"model": "per_unit", "rate": "7"},
        )
        services.rate_plan_version_publish(version=draft)
    # The same (warm) cache object: its local entry is keyed by the old generation.
    resolution = resolve(lookup(cache, setup), subject=KEY, metric="new_metric", at=timezone.now())
    assert isinstance(resolution, Resolution)
    assert resolution.metric.pricer.quote(Decimal(1)) == Decimal(7)


def test_unknown_keys_are_cached_until_the_key_is_created(django_capture_on_commit_callbacks):
    setup = priced_setup()
    cache = EnrichmentCache()
    assert lookup(cache, setup, "sk_live_future") is None
    assert lookup(cache, setup, "sk_live_future") is None
    assert cache.stats["local"] == 1
    with django_capture_on_commit_callbacks(execute=True):
        services.api_key_create(app=setup.app, secret="sk_live_future")
    assert lookup(cache, setup, "sk_live_future").customer_id == setup.customer.id


def test_warm_job_fills_redis_so_consumers_skip_postgres():
    setups = [priced_setup(), priced_setup()]
    assert enrichment_cache_warm_task.apply().get() >= 2
    cache = EnrichmentCache()
    for setup in setups:
        assert lookup(cache, setup).customer_id == setup.customer.id
    assert cache.stats["postgres"] == 0 and cache.stats["redis"] == 2


def test_warm_job_skips_keys_revoked_long_ago(django_capture_on_commit_callbacks):
    setup = priced_setup()
    with django_capture_on_commit_callbacks(execute=True):
        services.api_key_revoke(
            api_key=setup.app.api_keys.get(), reason="leaked", revoked_by="test", at=timezone.now() - timedelta(days=91)
        )
    enrichment_cache_warm()
    cache = EnrichmentCache()
    lookup(cache, setup)
    assert cache.stats["postgres"] == 1  # not warmed; still resolvable on demand
