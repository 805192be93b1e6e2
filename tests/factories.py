"""factory_boy factories for the catalog, and `priced_setup`, the whole billing hierarchy
(customer → team → app → key, product → metric, offering → plan → published version →
per-unit config, subscription) in one call."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import factory
from django.utils import timezone

from catalog import services
from catalog.models import (
    App,
    Customer,
    Metric,
    MetricConfig,
    Offering,
    Product,
    RatePlan,
    RatePlanVersion,
    Subscription,
    Team,
    Tenant,
    TenantToken,
)


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant

    name = factory.Sequence(lambda n: f"Tenant {n}")
    slug = factory.Sequence(lambda n: f"tenant-{n}")


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Customer {n}")
    external_id = factory.Sequence(lambda n: f"cust-{n}")


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team

    customer = factory.SubFactory(CustomerFactory)
    tenant = factory.SelfAttribute("customer.tenant")
    name = factory.Sequence(lambda n: f"Team {n}")


class AppFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = App

    team = factory.SubFactory(TeamFactory)
    tenant = factory.SelfAttribute("team.tenant")
    name = factory.Sequence(lambda n: f"App {n}")


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    tenant = factory.SubFactory(TenantFactory)
    code = factory.Sequence(lambda n: f"product-{n}")
    name = factory.Sequence(lambda n: f"Product {n}")
    product_type = Product.Type.API


class MetricFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Metric

    product = factory.SubFactory(ProductFactory)
    tenant = factory.SelfAttribute("product.tenant")
    code = factory.Sequence(lambda n: f"metric_{n}")
    name = factory.Sequence(lambda n: f"Metric {n}")


class OfferingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Offering

    tenant = factory.SubFactory(TenantFactory)
    code = factory.Sequence(lambda n: f"offering-{n}")
    name = factory.Sequence(lambda n: f"Offering {n}")


class RatePlanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RatePlan

    offering = factory.SubFactory(OfferingFactory)
    tenant = factory.SelfAttribute("offering.tenant")
    code = factory.Sequence(lambda n: f"plan-{n}")
    name = factory.Sequence(lambda n: f"Plan {n}")
    currency = "USD"


def tenant_token(tenant: Tenant, kind: str = TenantToken.Kind.ADMIN) -> str:
    """A fresh tenant token's secret (admin by default)."""
    return services.tenant_token_create(tenant=tenant, kind=kind, name=f"test {kind}")[1]


@dataclass
class PricedSetup:
    tenant: Tenant
    customer: Customer
    app: App
    api_key: str
    metric: Metric
    rate_plan: RatePlan
    version: RatePlanVersion
    metric_config: MetricConfig
    subscription: Subscription


def priced_setup(
    *,
    tenant: Tenant | None = None,
    rate: str = "0.003",
    included_free: str = "0",
    metric_code: str | None = None,
    billing_mode: str = Subscription.BillingMode.POSTPAID,
    started_at: datetime | None = None,
    config: dict | None = None,
) -> PricedSetup:
    """A tenant's complete hierarchy pricing one metric (per unit at `rate`, or by `config`),
    ready to rate events."""
    tenant = tenant or TenantFactory()
    started_at = started_at or timezone.now() - timedelta(days=120)
    customer = CustomerFactory(tenant=tenant)
    app = AppFactory(team=TeamFactory(customer=customer, tenant=tenant), tenant=tenant)
    _, secret = services.api_key_create(app=app, name="test key")
    product = ProductFactory(tenant=tenant)
    metric = MetricFactory(tenant=tenant, product=product, **({"code": metric_code} if metric_code else {}))
    plan = RatePlanFactory(tenant=tenant, offering=OfferingFactory(tenant=tenant))
    plan.offering.products.add(product)
    version = services.rate_plan_version_create(rate_plan=plan, effective_from=started_at)
    config = services.metric_config_set(
        version=version, metric=metric, config=config or {"model": "per_unit", "rate": rate, "included_free": included_free}
    )
    version = services.rate_plan_version_publish(version=version)
    subscription = services.catalog_object_save(
        instance=Subscription(
            tenant=tenant, customer=customer, offering=plan.offering, rate_plan=plan, billing_mode=billing_mode,
            billing_anchor=started_at, started_at=started_at, currency=plan.currency,
        )
    )
    return PricedSetup(tenant, customer, app, secret, metric, plan, version, config, subscription)


def amount(value: str) -> Decimal:
    return Decimal(value)


# --- ledgers: made through the real services, so every invariant holds (wallets_check, verify_ledger)


def funded_wallet(customer: Customer | None = None, amount: str = "100", *, currency: str = "USD", thresholds=()):
    """A customer's wallet, topped up once with `amount` (none when "0")."""
    from wallets.services import wallet_create, wallet_top_up

    customer = customer or CustomerFactory()
    wallet = wallet_create(customer=customer, currency=currency, low_balance_thresholds=[Decimal(t) for t in thresholds])
    if Decimal(amount):
        wallet_top_up(tenant_id=wallet.tenant_id, wallet_id=wallet.pk, amount=Decimal(amount), idempotency_key="funding")
    wallet.refresh_from_db()
    return wallet


def hold_for(wallet, amount: str, reference: str = "session-1", *, key: str | None = None, ttl_seconds: int = 600, now=None):
    """An active escrow hold on `wallet` (hold_place: idempotent per key)."""
    from wallets.holds import hold_place

    hold, _ = hold_place(
        tenant_id=wallet.tenant_id, wallet_id=wallet.pk, amount=Decimal(amount), ttl_seconds=ttl_seconds,
        reference=reference, idempotency_key=key or f"key-{reference}", now=now,
    )
    return hold


def rated_event(setup: PricedSetup, event_id: str, quantity: str, *, at: datetime | None = None, dimensions=None, metadata=None):
    """One event rated through the consumer's real path (validation, enrichment, the usage batch
    with its wallet debits); returns its rated record."""
    from billing.usage import IncomingEvent, usage_batch_record
    from metering.enrichment import EnrichmentCache
    from metering.validation import validate_event

    now = timezone.now()
    event = validate_event(
        {
            "event_id": event_id, "api_key": setup.api_key, "metric": setup.metric.code, "quantity": quantity,
            "timestamp": (at or now - timedelta(seconds=1)).isoformat(), "dimensions": dimensions or {},
            "metadata": metadata or {},
        },
        now=now,
    )
    outcome = usage_batch_record(events=[IncomingEvent(setup.tenant.id, event.subject, event, now, 0, None)], cache=EnrichmentCache())
    assert len(outcome.rated) == 1, outcome
    return outcome.rated[0]


def settled_invoice(setup: PricedSetup, *, at: datetime | None = None):
    """The final invoice of the period containing `at` (now), through the settlement pipeline."""
    from billing.settlement import settlement_run

    return settlement_run(subscription_id=setup.subscription.pk, at=at or timezone.now()).invoice
