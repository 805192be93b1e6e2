"""The operator admin: every registered model's pages open for a superuser, ledgers are
read-only, rated events link to their raw events, and ledger lists make no N+1 queries.

Also home of the helpers the other admin tests import (`ledger_rows`, `operator`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import pytest

from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.urls import reverse
from django.utils import timezone

from billing.alerts.evaluate import AlertEvaluator, rated_decode
from billing.models import AllowanceGrant, Coupon, Discount, PricingSnapshot, RatedEvent, RolloverPolicy, RunningTotal, TaxRate
from billing.periods import period_for
from billing.rated_wire import RatedWire
from billing.rating import config_hash
from billing.rerating.services import event_reverse
from billing.settlement import settlement_run
from catalog.admin.confirm import CONFIRM
from catalog.models import CustomerUser, Tenant, TenantMember, TenantToken, key_hash
from metering.models import RawEvent, UnmatchedUsage
from notify.alerts import alert_rule_save
from notify.services import webhook_endpoint_create, webhook_event_emit
from wallets.grants import credit_grant_create
from tests.factories import PricedSetup, priced_setup, rated_event, tenant_token
from wallets.services import wallet_create, wallet_top_up
from wallets.holds import hold_place

from billing.models import Lease  # noqa: E402  (its own line: merges beside other imports)
from billing.invoicing import invoice_void_and_reissue  # noqa: E402  (its own line: merges beside other imports)
from billing.trials.services import trial_convert  # noqa: E402  (its own line: merges beside other imports)
from billing.models import ReplayRun  # noqa: E402  (its own line: merges beside other imports)
from catalog.models import Subscription  # noqa: E402  (its own line: merges beside other imports)

LEDGER_MODELS = [RawEvent, UnmatchedUsage, RatedEvent, RunningTotal, PricingSnapshot, Lease]


@dataclass
class LedgerRows:
    raw_event: RawEvent
    rated_event: RatedEvent
    running_total: RunningTotal
    unmatched: UnmatchedUsage


def ledger_rows(
    setup: PricedSetup, *, event_id: str = "evt-1", quantity: str = "5", amount: str = "0.015"
) -> LedgerRows:
    """One rated event (with its raw event and running total) and one unmatched event of a
    priced setup, written directly: the consumer that normally writes them is tested elsewhere."""
    now = timezone.now()
    raw = RawEvent.objects.create(
        tenant=setup.tenant, event_id=event_id, api_key_prefix=setup.api_key[:16], subject="key:" + key_hash(setup.api_key),
        metric=setup.metric.code, quantity=Decimal(quantity), timestamp=now - timedelta(minutes=1), received_at=now,
        dimensions={"region": "eu"}, metadata={"gateway": "kong", "route": "/v1/search"},
    )
    config = setup.metric_config.config
    snapshot, _ = PricingSnapshot.objects.get_or_create(config_hash=config_hash(config), defaults={"config": config})
    subscription = setup.subscription
    start, end = period_for(cadence=subscription.billing_cadence, anchor=subscription.billing_anchor, at=now)
    common = {
        "tenant": setup.tenant, "subscription": setup.subscription, "customer": setup.customer, "metric": setup.metric,
        "period_start": start, "period_end": end, "currency": "USD",
    }
    rated = RatedEvent.objects.create(
        **common, raw_event=raw, rate_plan_version=setup.version, metric_config=setup.metric_config,
        pricing_snapshot=snapshot, event_timestamp=raw.timestamp, quantity=raw.quantity, units_before=Decimal(0),
        units_after=raw.quantity, amount=Decimal(amount),
    )
    total = RunningTotal.objects.create(**common, units=raw.quantity, amount=Decimal(amount), event_count=1)
    stray = RawEvent.objects.create(
        tenant=setup.tenant, event_id=f"{event_id}-stray", api_key_prefix="sk_live_unknown0", subject="key:" + "0" * 64,
        metric=setup.metric.code, quantity=Decimal("2"), timestamp=now - timedelta(minutes=1), received_at=now,
    )
    unmatched = UnmatchedUsage.objects.create(
        tenant=setup.tenant, raw_event=stray, reason=UnmatchedUsage.Reason.UNKNOWN_API_KEY, detail="no such key"
    )
    return LedgerRows(raw, rated, total, unmatched)


def operator(tenant: Tenant, *, username: str = "operator"):
    """A staff user operating one tenant, with every model permission of the Aforo apps."""
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label__in=["catalog", "metering", "billing"]))
    TenantMember.objects.create(user=user, tenant=tenant)
    return user


def change_url(obj) -> str:
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


def changelist_url(model) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


@pytest.fixture
def everything(db, django_user_model):
    """At least one row of every model the admin registers, in two tenants."""
    setups = [priced_setup(), priced_setup()]
    for index, setup in enumerate(setups):
        ledger_rows(setup, event_id=f"evt-{index}")
        # An alert rule and its firing (a spend threshold the next event's charge reaches).
        alert_rule_save(tenant_id=setup.tenant.pk, data={"kind": "spend_amount", "thresholds": ["0.000001"]})
        alerting = rated_event(setup, f"alerting-{index}", "5")
        AlertEvaluator().evaluate([rated_decode(RatedWire().encode(alerting))])
        tenant_token(setup.tenant)
        login = django_user_model.objects.create_user(f"customer{index}", password="pw")
        CustomerUser.objects.create(user=login, customer=setup.customer)
        # A wallet, its ledger, an active hold and (the hold crosses 50) a low-balance alert.
        wallet = wallet_create(customer=setup.customer, currency="USD", low_balance_thresholds=[Decimal(50)])
        wallet_top_up(tenant_id=setup.tenant.pk, wallet_id=wallet.pk, amount=Decimal(100), idempotency_key="seed")
        hold_place(
            tenant_id=setup.tenant.pk, wallet_id=wallet.pk, amount=Decimal(60), ttl_seconds=600, reference="sess",
            idempotency_key="hold",
        )
        RolloverPolicy.objects.create(
            tenant=setup.tenant, subscription=setup.subscription, metric=setup.metric, included_units=Decimal(10),
            expires_after_periods=1,
        )
        Discount.objects.create(tenant=setup.tenant, subscription=setup.subscription, kind="percent", value=Decimal(5))
        TaxRate.objects.create(tenant=setup.tenant, customer=setup.customer, name="VAT", percent=Decimal(20))
        Coupon.objects.create(tenant=setup.tenant, customer=setup.customer, code="C1", currency="USD", amount=Decimal(1))
        credit_grant_create(customer=setup.customer, currency="USD", amount=Decimal(2), name="Promo", idempotency_key="g")
        settled = settlement_run(subscription_id=setup.subscription.pk, at=timezone.now())  # an invoice, its run, a grant
        invoice_void_and_reissue(invoice=settled.invoice, reason="seed")  # a credit note, and the reissue
        AllowanceGrant.objects.create(
            tenant=setup.tenant, subscription=setup.subscription, metric=setup.metric, period_start=timezone.now(),
            units=Decimal(5),
        )
        start, end = period_for(cadence=setup.subscription.billing_cadence, anchor=setup.subscription.billing_anchor, at=timezone.now())
        Lease.objects.create(  # a budget lease (its price has no limit: made directly, as the grant would)
            tenant=setup.tenant, subscription=setup.subscription, customer=setup.customer, metric=setup.metric,
            period_start=start, period_end=end, holder="gw-1", idempotency_key="lease", requested_units=Decimal(5),
            ttl_seconds=60, leased=Decimal(5), expires_at=timezone.now() + timedelta(seconds=60),
        )
        # A webhook endpoint and one delivery in its log (recorded; not sent: no commit here).
        webhook_endpoint_create(tenant_id=setup.tenant.pk, url="https://hooks.example.com/a", event_types=["*"])
        webhook_event_emit(tenant_id=setup.tenant.pk, event_type="invoice.finalized", event_id=f"e{index}", data={})
        # A trial, ended by the operator: its usage row and its conversion.
        Subscription.objects.filter(pk=setup.subscription.pk).update(trial_ends_at=timezone.now() + timedelta(days=10))
        trial_convert(subscription_id=setup.subscription.pk, reason="seed")
        # A finished replay run and its report (billing.replay).
        ReplayRun.objects.create(tenant=setup.tenant, source="unmatched", dry_run=True, status="succeeded",
                                 report={"would_replay": 0}, requested_by="seed")
        # A reversed event (billing.rerating): its job, a reversal row and the re-rated rows.
        event_reverse(tenant_id=setup.tenant.pk, raw_event_id=alerting.raw_event_id, reason="seed")
    operator(setups[0].tenant)
    Group.objects.create(name="operators")
    return setups


REGISTERED = sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)


@pytest.mark.parametrize(("model", "model_admin"), REGISTERED, ids=[m._meta.label for m, _ in REGISTERED])
def test_superuser_opens_every_changelist_add_and_change_page(
    admin_client, everything, rf, admin_user, model, model_admin
):
    changelist = admin_client.get(changelist_url(model))
    assert changelist.status_code == 200, model._meta.label
    obj = model._default_manager.order_by("pk").first()
    assert obj is not None, f"no {model._meta.label} row to open"
    change = admin_client.get(change_url(obj))
    assert change.status_code == 200, model._meta.label
    request = rf.get("/")
    request.user = admin_user
    add = admin_client.get(reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_add"))
    assert add.status_code == (200 if model_admin.has_add_permission(request) else 403), model._meta.label


@pytest.mark.parametrize("model", LEDGER_MODELS, ids=[m._meta.label for m in LEDGER_MODELS])
def test_ledgers_refuse_add_change_and_delete(admin_client, everything, model):
    obj = model._default_manager.order_by("pk").first()
    before = model._default_manager.count()
    info = f"admin:{model._meta.app_label}_{model._meta.model_name}"
    assert admin_client.get(reverse(f"{info}_add")).status_code == 403
    assert admin_client.post(reverse(f"{info}_add"), {}).status_code == 403
    assert admin_client.post(change_url(obj), {}).status_code == 403
    assert admin_client.get(reverse(f"{info}_delete", args=[obj.pk])).status_code == 403
    assert admin_client.post(reverse(f"{info}_delete", args=[obj.pk]), {"post": "yes"}).status_code == 403
    page = admin_client.get(change_url(obj))
    assert page.status_code == 200
    assert b'name="_save"' not in page.content  # view only
    assert model._default_manager.count() == before
    changelist = admin_client.get(changelist_url(model))
    assert b"delete_selected" not in changelist.content


def test_rated_event_links_to_its_raw_event_with_original_dimensions(admin_client, db):
    rows = ledger_rows(priced_setup(), event_id="trace-me")
    page = admin_client.get(change_url(rows.rated_event)).content.decode()
    assert f'href="{change_url(rows.raw_event)}"' in page
    assert "trace-me" in page
    assert "&quot;region&quot;: &quot;eu&quot;" in page
    assert "&quot;gateway&quot;: &quot;kong&quot;" in page
    raw_page = admin_client.get(change_url(rows.raw_event)).content.decode()
    assert f'href="{change_url(rows.rated_event)}"' in raw_page
    listing = admin_client.get(changelist_url(RatedEvent)).content.decode()
    assert f'href="{change_url(rows.raw_event)}"' in listing
    assert '<td class="field-amount_exact">0.015</td>' in listing  # exact, without 26 storage decimals
    totals = admin_client.get(changelist_url(RunningTotal)).content.decode()
    assert '<td class="field-units_exact">5</td>' in totals and '<td class="field-amount_exact">0.015</td>' in totals


@pytest.mark.parametrize("model", [RawEvent, RatedEvent, UnmatchedUsage, RunningTotal])
def test_ledger_changelists_make_no_n_plus_one_queries(admin_client, db, django_assert_max_num_queries, model):
    setup = priced_setup()
    ledger_rows(setup, event_id="warm")
    admin_client.get(changelist_url(model))  # warm the session and content types
    with django_assert_max_num_queries(30) as few:
        admin_client.get(changelist_url(model))
    baseline = len(few.captured_queries)
    for index in range(8):
        extra = priced_setup(tenant=setup.tenant)
        ledger_rows(extra, event_id=f"more-{index}")
    with django_assert_max_num_queries(baseline):
        response = admin_client.get(changelist_url(model))
    assert response.status_code == 200
    assert response.context["cl"].result_count == model._default_manager.count() > 8


def test_ledger_search_and_filters(admin_client, db):
    first, second = priced_setup(), priced_setup()
    ledger_rows(first, event_id="alpha")
    ledger_rows(second, event_id="beta")

    def result_ids(model, query: str) -> set[int]:
        response = admin_client.get(changelist_url(model) + query)
        assert response.status_code == 200
        return {row.pk for row in response.context["cl"].result_list}

    alpha = RawEvent.objects.get(event_id="alpha")
    assert result_ids(RawEvent, "?q=alpha") == {alpha.pk}
    assert result_ids(RawEvent, f"?metric={second.metric.code}") == set(
        RawEvent.objects.filter(metric=second.metric.code).values_list("pk", flat=True)
    )
    assert result_ids(RatedEvent, "?q=beta") == {RatedEvent.objects.get(raw_event__event_id="beta").pk}
    first_rated = RatedEvent.objects.get(tenant=first.tenant).pk
    assert result_ids(RatedEvent, f"?tenant__id__exact={first.tenant.pk}") == {first_rated}
    unresolved = set(UnmatchedUsage.objects.values_list("pk", flat=True))
    assert result_ids(UnmatchedUsage, "?resolved=no") == unresolved
    assert result_ids(UnmatchedUsage, "?resolved=yes") == set()
    assert result_ids(UnmatchedUsage, "?reason=unknown_api_key") == unresolved
    period = RunningTotal.objects.get(tenant=first.tenant).period_start
    assert result_ids(RunningTotal, "?" + f"period={period.isoformat()}".replace("+", "%2B")) == set(
        RunningTotal.objects.filter(period_start=period).values_list("pk", flat=True)
    )
    # Searches look up identifiers through indexes (tests/test_admin_ledger_reads.py): an event id, exactly.
    stray = UnmatchedUsage.objects.get(raw_event__event_id="alpha-stray")
    assert result_ids(UnmatchedUsage, "?q=alpha-stray") == {stray.pk}
    assert result_ids(RawEvent, f"?q={first.api_key[:12]}") == set()  # key prefixes: no index, not searched


def test_tenant_tokens_are_created_once_and_revoked(admin_client, db):
    tenant = priced_setup().tenant
    form = {"tenant": tenant.pk, "kind": "ingest", "name": "gateway"}
    response = admin_client.post(reverse("admin:catalog_tenanttoken_add"), form, follow=True)
    assert response.status_code == 200
    token = TenantToken.objects.get(name="gateway")
    shown = [str(m) for m in response.context["messages"] if "copy it now" in str(m)]
    assert len(shown) == 1
    secret = shown[0].split(": ", 1)[1].split(" ")[0]
    assert secret.startswith("aft_ingest_") and key_hash(secret) == token.key_hash and token.prefix == secret[:16]
    assert secret not in admin_client.get(change_url(token)).content.decode()
    assert secret not in admin_client.get(changelist_url(TenantToken)).content.decode()
    selection = {"action": "revoke_selected", "_selected_action": [token.pk]}
    page = admin_client.post(changelist_url(TenantToken), selection)
    assert page.status_code == 200 and "Nothing has changed yet" in page.content.decode()  # a confirmation first
    token.refresh_from_db()
    assert token.is_active
    refused = admin_client.post(changelist_url(TenantToken), {**selection, CONFIRM: "1", "reason": "  "})
    assert refused.status_code == 200 and "reason" in refused.content.decode()
    token.refresh_from_db()
    assert token.is_active  # no reason, no revocation
    admin_client.post(changelist_url(TenantToken), {**selection, CONFIRM: "1", "reason": "leaked in a log"})
    token.refresh_from_db()
    assert token.revoked_at is not None and not token.is_active
    assert token.revoked_reason == "leaked in a log" and token.revoked_by.startswith("admin:")
    first = token.revoked_at
    admin_client.post(changelist_url(TenantToken), {**selection, CONFIRM: "1", "reason": "again"})
    token.refresh_from_db()
    assert (token.revoked_at, token.revoked_reason) == (first, "leaked in a log")  # the first revocation stays
    assert "leaked in a log" in admin_client.get(change_url(token)).content.decode()


def test_rated_event_page_shows_its_tier_breakdown(admin_client, db):
    rows = ledger_rows(priced_setup(), event_id="tiered")
    RatedEvent.objects.filter(pk=rows.rated_event.pk).update(
        tiers=[{"tier": 1, "units": "-10", "amount": "-15"}, {"tier": 2, "units": "10.5", "amount": "7.25"}]
    )
    page = admin_client.get(change_url(rows.rated_event)).content.decode()
    assert "tier 1: -10 units → -15, tier 2: 10.5 units → 7.25" in page
