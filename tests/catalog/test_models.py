"""Model-level rules of the catalog that every interface (API, admin, services) relies on."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from catalog import services
from catalog.models import PublishedVersionError, RatePlan, RatePlanVersion, Subscription
from metering.enrichment import EnrichmentCache, resolve
from metering.validation import api_key_subject
from tests.factories import CustomerFactory, OfferingFactory, priced_setup

pytestmark = pytest.mark.django_db
KEY = "key:"  # these events carry an API key


def test_canceling_a_subscription_ends_it_now_so_later_events_stop_rating(django_capture_on_commit_callbacks):
    setup = priced_setup()
    with django_capture_on_commit_callbacks(execute=True):
        setup.subscription.status = Subscription.Status.CANCELED
        setup.subscription.save()
    ended_at = Subscription.objects.get(pk=setup.subscription.pk).ended_at
    assert ended_at is not None and timezone.now() - ended_at < timedelta(seconds=5)
    key = (setup.tenant.id, api_key_subject(setup.api_key))
    context = EnrichmentCache().lookup_many([key])[key]
    assert resolve(context, subject=KEY, metric=setup.metric.code, at=ended_at).reason == "no_active_subscription"
    assert resolve(context, subject=KEY, metric=setup.metric.code, at=ended_at - timedelta(seconds=1)).subscription.id == setup.subscription.id


def test_published_versions_and_their_configs_are_immutable():
    setup = priced_setup()
    setup.version.notes = "changed"
    with pytest.raises(PublishedVersionError):
        setup.version.save()
    with pytest.raises(PublishedVersionError):
        setup.version.delete()
    stale = RatePlanVersion.objects.get(pk=setup.version.pk)
    stale.status = RatePlanVersion.Status.DRAFT  # an in-memory copy from before publishing
    with pytest.raises(PublishedVersionError):
        stale.delete()
    with pytest.raises(PublishedVersionError):
        stale.save()
    with pytest.raises(PublishedVersionError):
        services.metric_config_set(version=setup.version, metric=setup.metric, config={"model": "per_unit", "rate": "9"})
    setup.metric_config.config = {"model": "per_unit", "rate": "9"}
    with pytest.raises(PublishedVersionError):
        setup.metric_config.save()


def test_relations_must_stay_inside_the_tenant():
    setup = priced_setup()
    stranger = CustomerFactory()  # another tenant
    subscription = Subscription(
        tenant=setup.tenant, customer=stranger, offering=setup.rate_plan.offering, rate_plan=setup.rate_plan,
        billing_anchor=timezone.now(), started_at=timezone.now(), currency="USD",
    )
    with pytest.raises(ValidationError) as error:
        subscription.full_clean()
    assert "customer" in error.value.message_dict


def test_every_catalog_change_advances_the_generation_in_its_own_transaction():
    from django.db import transaction

    from catalog.generation import catalog_generation_get_many
    from catalog.models import Tenant

    setup = priced_setup()
    tenant_id = setup.tenant.id
    before = catalog_generation_get_many(tenant_ids=[tenant_id])[tenant_id]
    assert before > 1_700_000_000_000  # seeded from the creation time (ms): unique across rebuilt databases
    setup.customer.name = "Renamed"
    setup.customer.save()
    after = catalog_generation_get_many(tenant_ids=[tenant_id])[tenant_id]
    assert after == before + 1
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            setup.customer.name = "Rolled back"
            setup.customer.save()
            raise RuntimeError("abort the change")
    assert Tenant.objects.get(pk=tenant_id).catalog_generation == after  # no change, no bump
    services.api_key_revoke(api_key=setup.app.api_keys.get(), reason="leaked", revoked_by="test")
    assert catalog_generation_get_many(tenant_ids=[tenant_id])[tenant_id] == after + 1


@pytest.mark.parametrize("currency", ["ABC", "XXX", "XTS", "XAG", "HRK", "usd"])
def test_rate_plan_and_subscription_currencies_are_active_iso_4217_codes(currency):
    setup = priced_setup()
    offering = OfferingFactory(tenant=setup.tenant)
    plan = RatePlan(tenant=setup.tenant, offering=offering, code="p", name="P", currency=currency)
    subscription = Subscription.objects.get(pk=setup.subscription.pk)
    subscription.currency = currency
    for row in (plan, subscription):
        with pytest.raises(ValidationError) as error:
            row.full_clean()
        assert "invalid_currency" in [e.code for e in error.value.error_dict["currency"]]
    plan.currency = "JPY"
    plan.full_clean()
