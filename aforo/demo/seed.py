"""The demo tenant: products, plans, customers, keys and subscriptions, created idempotently.

Demo secrets are derived from SECRET_KEY (HMAC), so every run on one install prints the same
credentials while no two installs share them. They exist for demos and tests only."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from wallets.models import Wallet
from wallets.services import wallet_create, wallet_top_up

from catalog.models import (
    ApiKey,
    App,
    Customer,
    CustomerUser,
    Metric,
    Offering,
    Product,
    RatePlan,
    RatePlanVersion,
    Subscription,
    Team,
    Tenant,
    TenantMember,
    TenantToken,
    key_hash,
)
from catalog.services import (
    API_KEY_PREFIX,
    TOKEN_PREFIXES,
    api_key_create,
    metric_config_set,
    rate_plan_version_create,
    rate_plan_version_publish,
    tenant_token_create,
)

DEMO_TENANT_SLUG = "demo"
ADMIN_LOGIN = ("admin", "admin")

PRODUCTS = [
    ("search-api", "Search API", Product.Type.API, [("api_calls", "API calls", "call")]),
    ("tools-mcp", "Tools MCP server", Product.Type.MCP_SERVER, [("tool_calls", "MCP tool calls", "call")]),
    (
        "agent-api",
        "Agent API",
        Product.Type.AGENTIC_API,
        [("agent_sessions", "Agent sessions", "session"), ("llm_tokens", "LLM tokens", "token")],
    ),
]
OFFERINGS = [
    ("growth", "Growth", ["search-api", "agent-api"], "growth-usd", "Growth (USD)"),
    ("mcp-pro", "MCP Pro", ["tools-mcp"], "mcp-pro-usd", "MCP Pro (USD)"),
]
# One of each kind of price a usage business reaches for: graduated API calls (first 1,000 free),
# sessions sold in packs, volume-priced tokens, and per-tool prices on MCP tool calls (with a hard
# limit on the costliest tool).
PRICES = {
    "growth-usd": {
        "api_calls": {
            "model": "graduated",
            "tiers": [
                {"up_to": "1000", "unit_amount": "0"},
                {"up_to": "100000", "unit_amount": "0.003"},
                {"up_to": None, "unit_amount": "0.002"},
            ],
            "limit": {"units": "250000", "overage": "bill"},  # reported on the usage page; beyond it billed as usual
        },
        "agent_sessions": {"model": "package", "package_size": "10", "rate": "0.40"},
        "llm_tokens": {
            "model": "volume",
            "tiers": [
                {"up_to": "1000000", "unit_amount": "0.000002"},
                {"up_to": "10000000", "unit_amount": "0.0000015"},
                {"up_to": None, "unit_amount": "0.000001"},
            ],
        },
    },
    "mcp-pro-usd": {
        "tool_calls": {
            "model": "per_unit",
            "rate": "0.01",
            "overrides": [
                {
                    "match": {"tool_name": "generate"},
                    # a hard limit: generate calls beyond 100 a month are blocked; any that got
                    # through are recorded and rated at zero as they come (never charged)
                    "price": {"model": "per_unit", "rate": "0.05", "limit": {"units": "100", "overage": "block"}},
                },
                {"match": {"tool_name": "summarize"}, "price": {"model": "per_unit", "rate": "0.02"}},
            ],
        }
    },
}
CUSTOMERS = [
    # name, external id, billing mode, rate plan, login
    ("Acme Corp", "acme", Subscription.BillingMode.POSTPAID, "growth-usd", ("acme", "acme")),
    ("Globex", "globex", Subscription.BillingMode.PREPAID, "mcp-pro-usd", ("globex", "globex")),
    ("Initech", "initech", Subscription.BillingMode.HYBRID, "growth-usd", ("initech", "initech")),
]
# What their invoices print (catalog Customer billing details; the PDF's buyer block).
BILLING_DETAILS = {
    "acme": {"billing_name": "Acme Corporation", "billing_address": "100 Main Street\nSpringfield, IL 62701",
             "country": "US", "tax_id": "12-3456789", "billing_email": "ap@acme.example"},
    "globex": {"billing_name": "Globex GmbH", "billing_address": "Friedrichstraße 68\n10117 Berlin", "country": "DE",
               "tax_id": "DE811907980", "billing_email": "rechnungen@globex.example"},
    "initech": {"billing_name": "Initech SAS", "billing_address": "8 rue de Rivoli\n75004 Paris", "country": "FR",
                "tax_id": "FR40303265045", "billing_email": "factures@initech.example"},
}
# The demo tenant as the seller on every invoice.
SELLER_DETAILS = {
    "legal_name": "Demo SaaS Co, Inc.", "address": "1 Market Street, Suite 300\nSan Francisco, CA 94105",
    "country": "US", "tax_id": "98-7654321", "billing_email": "billing@demo-saas.example",
}
# Prepaid and hybrid customers pay from a wallet in their subscription's currency:
# external id -> (starting top-up, low-balance thresholds).
WALLETS = {
    "globex": (Decimal(500), (Decimal(100), Decimal(25))),
    "initech": (Decimal(200), (Decimal(50), Decimal(10))),
}


def demo_secret(label: str, prefix: str) -> str:
    digest = hmac.new(settings.SECRET_KEY.encode(), f"aforo-demo:{label}".encode(), hashlib.sha256).digest()
    return prefix + base64.urlsafe_b64encode(digest).decode().rstrip("=")[:40]


def history_start(now: datetime) -> datetime:
    """First day of the month three months back: where demo subscriptions start."""
    month_index = now.year * 12 + now.month - 1 - 3
    return datetime(month_index // 12, month_index % 12 + 1, 1, tzinfo=timezone.utc)


def _token(tenant: Tenant, kind: str, name: str) -> str:
    secret = demo_secret(f"{tenant.slug}:{kind}", TOKEN_PREFIXES[kind])
    if not TenantToken.objects.filter(key_hash=key_hash(secret)).exists():
        tenant_token_create(tenant=tenant, kind=kind, name=name, secret=secret)
    return secret


def _user(username: str, password: str, **flags: Any):
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(username=username, defaults=flags)
    if created:
        user.set_password(password)
        user.save()
    return user


def _wallet(customer: Customer, currency: str, external_id: str) -> int | None:
    """The customer's demo wallet, created with its thresholds and topped up once (the top-up's
    idempotency key makes every later seed a no-op)."""
    if external_id not in WALLETS:
        return None
    starting_balance, thresholds = WALLETS[external_id]
    wallet = Wallet.objects.filter(customer=customer, currency=currency).first()
    if wallet is None:
        wallet = wallet_create(customer=customer, currency=currency, low_balance_thresholds=thresholds)
    wallet_top_up(
        tenant_id=customer.tenant_id, wallet_id=wallet.pk, amount=starting_balance,
        idempotency_key="demo-seed:starting-balance", reference="Demo starting balance",
    )
    return wallet.pk


def _catalog(tenant: Tenant, start: datetime) -> dict[str, RatePlan]:
    products = {}
    for code, name, product_type, metrics in PRODUCTS:
        product, _ = Product.objects.get_or_create(tenant=tenant, code=code, defaults={"name": name, "product_type": product_type})
        products[code] = product
        for metric_code, metric_name, unit in metrics:
            Metric.objects.get_or_create(
                tenant=tenant, code=metric_code, defaults={"product": product, "name": metric_name, "unit": unit}
            )
    plans = {}
    for code, name, product_codes, plan_code, plan_name in OFFERINGS:
        offering, _ = Offering.objects.get_or_create(tenant=tenant, code=code, defaults={"name": name})
        offering.products.add(*[products[c] for c in product_codes])
        plan, _ = RatePlan.objects.get_or_create(
            tenant=tenant, code=plan_code, defaults={"offering": offering, "name": plan_name, "currency": "USD"}
        )
        plans[plan_code] = plan
        if not plan.versions.exists():
            version = rate_plan_version_create(rate_plan=plan, effective_from=start, notes="Demo launch prices")
            for metric_code, config in PRICES[plan_code].items():
                metric_config_set(version=version, metric=Metric.objects.get(tenant=tenant, code=metric_code), config=config)
            rate_plan_version_publish(version=version)
    return plans


def demo_seed(*, now: datetime | None = None, history: bool = False) -> dict[str, Any]:
    """Create (or find) the demo tenant and everything under it; return its credentials and ids.
    The catalog in one transaction, then the wallets through their own (durable) services, then
    (`history`) past usage rated and settled through the real pipelines (aforo.demo.history)."""
    seeded, wallet_owners = _demo_catalog(now=now)
    for entry, (customer, external_id) in zip(seeded["customers"], wallet_owners):
        entry["wallet_id"] = _wallet(customer, entry["currency"], external_id)
    if history:
        from .history import demo_history_backfill

        seeded["history"] = demo_history_backfill(seeded, now=now)
    return seeded


# The tenant's default alert rules (the alerts consumer evaluates them; the dashboard shows what fired).
DEMO_ALERT_RULES = [
    {"kind": "quota_percent", "thresholds": ["80", "100"], "name": "Included quota"},
    {"kind": "limit_percent", "thresholds": ["80", "100"], "name": "Hard limit"},
    {"kind": "commitment_percent", "thresholds": ["50", "100"], "name": "Minimum commitment"},
    {"kind": "anomaly", "factor": "3", "window_minutes": 5, "baseline_minutes": 60, "min_units": "100", "name": "Usage spike"},
]


def _alert_rules(tenant: Tenant) -> None:
    from notify.alerts import alert_rule_save
    from notify.models import AlertRule

    for rule in DEMO_ALERT_RULES:
        if not AlertRule.objects.filter(tenant=tenant, kind=rule["kind"], metric=None, rate_plan=None, subscription=None).exists():
            alert_rule_save(tenant_id=tenant.pk, data=rule)


@transaction.atomic
def _demo_catalog(*, now: datetime | None = None) -> tuple[dict[str, Any], list[tuple[Customer, str]]]:
    now = now or datetime.now(timezone.utc)
    start = history_start(now)
    tenant, _ = Tenant.objects.get_or_create(slug=DEMO_TENANT_SLUG, defaults={"name": "Demo SaaS Co", **SELLER_DETAILS})
    admin = _user(*ADMIN_LOGIN, is_staff=True, is_superuser=True)
    TenantMember.objects.get_or_create(user=admin, defaults={"tenant": tenant})
    plans = _catalog(tenant, start)
    _alert_rules(tenant)

    customers = []
    owners = []
    for name, external_id, mode, plan_code, (username, password) in CUSTOMERS:
        customer, _ = Customer.objects.get_or_create(
            tenant=tenant, external_id=external_id, defaults={"name": name, **BILLING_DETAILS.get(external_id, {})}
        )
        owners.append((customer, external_id))
        CustomerUser.objects.get_or_create(user=_user(username, password), defaults={"customer": customer})
        team, _ = Team.objects.get_or_create(tenant=tenant, customer=customer, name="Platform")
        app, _ = App.objects.get_or_create(tenant=tenant, team=team, name="Production app", defaults={"kind": App.Kind.APP})
        App.objects.get_or_create(tenant=tenant, team=team, name="SmartSearch-Prod", defaults={"kind": App.Kind.AGENT})
        secret = demo_secret(f"{tenant.slug}:key:{external_id}", API_KEY_PREFIX)
        if not ApiKey.objects.filter(key_hash=key_hash(secret)).exists():
            api_key_create(app=app, name="demo key", secret=secret)
        plan = plans[plan_code]
        subscription = (
            Subscription.objects.filter(tenant=tenant, customer=customer, rate_plan=plan).order_by("id").first()
        )
        if subscription is None:
            subscription = Subscription.objects.create(
                tenant=tenant, customer=customer, offering=plan.offering, rate_plan=plan, billing_mode=mode,
                billing_cadence=Subscription.Cadence.MONTHLY, billing_anchor=start, currency=plan.currency,
                started_at=start,
            )
        version = plan.versions.filter(status=RatePlanVersion.Status.PUBLISHED).order_by("-effective_from").first()
        customers.append(
            {
                "id": customer.id,
                "name": customer.name,
                "api_key": secret,
                "subscription_id": subscription.id,
                "billing_mode": subscription.billing_mode,
                "currency": subscription.currency,
                "wallet_id": None,  # demo_seed fills it in after this transaction
                "metrics": sorted(version.metric_configs.values_list("metric__code", flat=True)),
                "login": {"username": username, "password": password},
            }
        )
    return {
        "tenant": {"id": tenant.id, "slug": tenant.slug, "name": tenant.name},
        "admin_token": _token(tenant, TenantToken.Kind.ADMIN, "Demo admin token"),
        "ingest_token": _token(tenant, TenantToken.Kind.INGEST, "Demo ingest token"),
        "admin_login": {"username": ADMIN_LOGIN[0], "password": ADMIN_LOGIN[1]},
        "customers": customers,
        "history_start": start.isoformat(),
    }, owners
