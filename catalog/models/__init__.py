"""The catalog and the billing hierarchy, one module per area; every name is importable from
`catalog.models` (Django loads the app's models from here, and migrations refer to
`catalog.models.validate_currency_code`).

Tenant → Customer → Team → App/Agent → API key (tenants, customers), and
Product → Metric; Offering → Rate plan → Rate plan version → Metric config (pricing);
Subscription = Customer × Offering × Rate plan (+ billing mode, cadence, anchor, currency) (subscriptions).

Every row below Tenant is `TenantOwned` (tenants.py states its rules: one tenant per row,
relations inside it, a catalog generation bump with every change).

The imports below follow the dependencies (customers and pricing build on tenants,
subscriptions on all three), which is also the order the models were defined in as one module,
so the app registry lists them as before.
"""

from .tenants import Tenant, TenantMember, TenantOwned, TenantToken, key_hash, same_tenant_check
from .customers import ApiKey, App, Customer, CustomerUser, Team
from .pricing import (
    Metric,
    MetricConfig,
    Offering,
    Product,
    PublishedVersionError,
    RatePlan,
    RatePlanVersion,
    VersionNotPublishable,
    validate_currency_code,
)
from .subscriptions import TERMS_FIELDS, Subscription, SubscriptionTermsVersion, TermsVersionImmutable

__all__ = [
    "ApiKey",
    "App",
    "Customer",
    "CustomerUser",
    "Metric",
    "MetricConfig",
    "Offering",
    "Product",
    "PublishedVersionError",
    "RatePlan",
    "RatePlanVersion",
    "Subscription",
    "SubscriptionTermsVersion",
    "TERMS_FIELDS",
    "TermsVersionImmutable",
    "Team",
    "Tenant",
    "TenantMember",
    "TenantOwned",
    "TenantToken",
    "VersionNotPublishable",
    "key_hash",
    "same_tenant_check",
    "validate_currency_code",
]
