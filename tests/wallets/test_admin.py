"""The wallets admin: figures read-only, money moved only by the Top up / Adjust forms (one
movement per rendered form, however often it is submitted) and the release action, the ledger,
holds and alerts read-only, everything confined to the operator's tenant.

Also home of the helpers the other wallet interface tests import (`funded_wallet`,
`wallet_operator`)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from catalog.models import Tenant
from tests.factories import CustomerFactory, funded_wallet, hold_for, priced_setup
from tests.test_admin import change_url, changelist_url, ledger_rows, operator
from wallets.models import Hold, LowBalanceAlert, Wallet, WalletEntry
from wallets.plan import RatedCharge
from wallets.services import wallet_adjust, wallet_top_up, wallets_check
from wallets.holds import hold_commit
from wallets.debits import wallet_charges_record

pytestmark = pytest.mark.django_db

D = Decimal


def place(wallet: Wallet, amount: str, reference: str, *, ttl_seconds: int = 600, now=None) -> Hold:
    return hold_for(wallet, amount, reference, ttl_seconds=ttl_seconds, now=now)


def wallet_operator(tenant: Tenant, *, username: str = "operator"):
    """`tests.test_admin.operator` with the wallets app's permissions too."""
    user = operator(tenant, username=username)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="wallets"))
    return user


def top_up_url(wallet: Wallet) -> str:
    return reverse("admin:wallets_wallet_top_up", args=[wallet.pk])


def adjust_url(wallet: Wallet) -> str:
    return reverse("admin:wallets_wallet_adjust", args=[wallet.pk])


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


@pytest.fixture
def wallet():
    return funded_wallet(priced_setup().customer, "100", thresholds=["50"])


@pytest.fixture
def operator_client(client, wallet):
    client.force_login(wallet_operator(wallet.customer.tenant))
    return client


# --- top up and adjust --------------------------------------------------------------------------


def test_top_up_form_submitted_twice_tops_up_once(operator_client, wallet):
    page = operator_client.get(top_up_url(wallet))
    assert page.status_code == 200
    key = page.context["form"]["idempotency_key"].value()
    assert key and f'name="idempotency_key" value="{key}"' in page.content.decode()
    assert "Balance <strong>100 USD</strong>" in page.content.decode()
    form = {"amount": "25.50", "reference": "wire 2026-11", "idempotency_key": key}

    first = operator_client.post(top_up_url(wallet), form, follow=True)
    second = operator_client.post(top_up_url(wallet), form, follow=True)

    assert first.redirect_chain == [(change_url(wallet), 302)]
    assert any("balance now 125.5, available 125.5 USD" in m for m in messages_of(first))
    assert second.redirect_chain == [(change_url(wallet), 302)]
    assert any("already submitted" in m and "nothing changed" in m for m in messages_of(second))
    wallet.refresh_from_db()
    assert wallet.balance == D("125.5")
    [top_up] = WalletEntry.objects.filter(wallet=wallet, kind=WalletEntry.Kind.TOP_UP, reference="wire 2026-11")
    assert top_up.amount == D("25.5") and top_up.idempotency_key.endswith(key)
    assert LogEntry.objects.filter(object_id=str(wallet.pk), change_message__contains="25.5 USD").count() == 1
    assert operator_client.get(top_up_url(wallet)).context["form"]["idempotency_key"].value() != key  # a fresh form
    assert wallets_check() == []


def test_top_up_errors_are_form_errors(operator_client, wallet):
    key = operator_client.get(top_up_url(wallet)).context["form"]["idempotency_key"].value()
    zero = operator_client.post(top_up_url(wallet), {"amount": "0", "idempotency_key": key})
    assert zero.status_code == 200 and "amount must be more than zero" in zero.content.decode()
    negative = operator_client.post(top_up_url(wallet), {"amount": "-5", "idempotency_key": key})
    assert negative.status_code == 200 and negative.context["form"].errors["amount"]
    operator_client.post(top_up_url(wallet), {"amount": "10", "idempotency_key": key})
    reused = operator_client.post(top_up_url(wallet), {"amount": "11", "idempotency_key": key})
    assert reused.status_code == 200
    [refusal] = reused.context["form"].non_field_errors()
    assert refusal.startswith("This form was already submitted") and "already used for a top-up of 10" in refusal
    no_key = operator_client.post(top_up_url(wallet), {"amount": "10"})
    assert no_key.status_code == 200 and "lost its one-time key" in no_key.content.decode()
    wallet.refresh_from_db()
    assert wallet.balance == D("110")


def test_adjust_asks_for_a_reason_then_confirms_with_the_balance_before_and_after(operator_client, wallet):
    page = operator_client.get(adjust_url(wallet))
    html = page.content.decode()
    assert page.status_code == 200 and 'name="reason"' in html and 'name="allow_negative_balance"' in html
    key = page.context["form"]["idempotency_key"].value()
    for missing in ({}, {"reason": "   "}):
        no_reason = operator_client.post(adjust_url(wallet), {"amount": "-60", "idempotency_key": key, **missing})
        assert no_reason.status_code == 200
        assert no_reason.context["form"].errors["reason"] == ["A reason is required: it is stored on the ledger entry."]
    zero = operator_client.post(adjust_url(wallet), {"amount": "0", "reason": "oops", "idempotency_key": key})
    assert zero.status_code == 200 and "non-zero" in zero.content.decode()

    form = {"amount": "-60", "reason": "refund of duplicate top-up", "reference": "T-7", "idempotency_key": key}
    review = operator_client.post(adjust_url(wallet), form)
    html = review.content.decode()
    assert review.status_code == 200 and review.templates[0].name == "admin/confirm_destructive.html"
    assert ["balance", "100.00 USD", "−60.00 USD", "40.00 USD"] in review.context["subject_rows"]
    assert 'name="_confirm"' in html and f'name="idempotency_key" value="{key}"' in html
    assert "refund of duplicate top-up" in html and "Nothing has changed yet" in html
    back = operator_client.post(adjust_url(wallet), {**form, "_edit": "1"})  # "Change the figures": the filled form
    assert back.templates[0].name == "admin/wallets/wallet/money_form.html" and back.context["form"]["amount"].value() == "-60"
    tampered = operator_client.post(adjust_url(wallet), {**form, "reason": "", "_confirm": "1"})
    assert tampered.status_code == 200 and tampered.context["form"].errors["reason"]
    wallet.refresh_from_db()
    assert wallet.balance == D("100") and not WalletEntry.objects.filter(wallet=wallet, kind="adjustment").exists()

    done = operator_client.post(adjust_url(wallet), {**form, "_confirm": "1"}, follow=True)
    again = operator_client.post(adjust_url(wallet), {**form, "_confirm": "1"}, follow=True)

    assert done.redirect_chain == [(change_url(wallet), 302)]
    assert any("balance now 40" in m for m in messages_of(done))
    assert any("already submitted" in m and "nothing changed" in m for m in messages_of(again))
    wallet.refresh_from_db()
    assert wallet.balance == D("40")
    [adjustment] = WalletEntry.objects.filter(wallet=wallet, kind=WalletEntry.Kind.ADJUSTMENT)
    assert (adjustment.amount, adjustment.reason, adjustment.reference) == (D("-60"), "refund of duplicate top-up", "T-7")
    assert LogEntry.objects.filter(object_id=str(wallet.pk), change_message__contains="refund of duplicate top-up").count() == 1
    [alert] = LowBalanceAlert.objects.filter(wallet=wallet)
    assert (alert.threshold, alert.available_after, alert.entry_id) == (D("50"), D("40"), adjustment.pk)


def test_an_adjustment_below_zero_is_refused_unless_the_operator_allows_a_negative_balance(operator_client, wallet):
    key = operator_client.get(adjust_url(wallet)).context["form"]["idempotency_key"].value()
    form = {"amount": "-500", "reason": "chargeback", "idempotency_key": key}
    for step in ({}, {"_confirm": "1"}):  # the review, and a confirmation posted without one
        refused = operator_client.post(adjust_url(wallet), {**form, **step})
        assert refused.status_code == 200
        [error] = refused.context["form"].errors["amount"]
        assert "from 100 USD to -400 USD: below zero" in error and "allow a negative balance explicitly" in error
    assert not WalletEntry.objects.filter(wallet=wallet, kind="adjustment").exists()

    allowed = {**form, "allow_negative_balance": "on"}
    review = operator_client.post(adjust_url(wallet), allowed)
    assert review.templates[0].name == "admin/confirm_destructive.html"
    assert any("The balance goes below zero (-400.00 USD)" in c for c in review.context["consequences"])
    assert ("allow_negative_balance", "on") in review.context["carry"]
    done = operator_client.post(adjust_url(wallet), {**allowed, "_confirm": "1"}, follow=True)
    assert any("balance now -400" in m for m in messages_of(done))
    wallet.refresh_from_db()
    assert wallet.balance == D("-400")
    assert WalletEntry.objects.get(wallet=wallet, kind="adjustment").reason == "chargeback"
    assert wallets_check() == []


def test_a_top_up_finer_than_the_minor_unit_is_a_form_error_and_the_form_stays_usable(operator_client, wallet):
    key = operator_client.get(top_up_url(wallet)).context["form"]["idempotency_key"].value()
    form = {"amount": "1.005", "reference": "wire", "idempotency_key": key}
    too_fine = operator_client.post(top_up_url(wallet), form)
    assert too_fine.status_code == 200
    [error] = too_fine.context["form"].errors["amount"]
    assert "1.005 USD is finer than the currency's minor unit (0.01 USD)" in error
    assert not WalletEntry.objects.filter(wallet=wallet, kind=WalletEntry.Kind.TOP_UP, reference="wire").exists()
    # The same rendered form, corrected: its one-time key was not used up by the refusal.
    fixed = operator_client.post(top_up_url(wallet), {**form, "amount": "1.01"}, follow=True)
    assert any("balance now 101.01" in m for m in messages_of(fixed))
    wallet.refresh_from_db()
    assert wallet.balance == D("101.01")
    assert wallets_check() == []


def test_an_adjustment_finer_than_the_minor_unit_is_a_form_error(operator_client):
    yen = funded_wallet(priced_setup().customer, "1000", currency="JPY")
    operator_client.force_login(wallet_operator(yen.tenant, username="yen-operator"))
    key = operator_client.get(adjust_url(yen)).context["form"]["idempotency_key"].value()
    form = {"amount": "-0.5", "reason": "rounding", "idempotency_key": key}
    response = operator_client.post(adjust_url(yen), form)
    assert response.status_code == 200
    assert "minor unit (1 JPY)" in response.context["form"].errors["amount"][0]
    yen.refresh_from_db()
    assert yen.balance == D(1000)
    assert not WalletEntry.objects.filter(wallet=yen, kind=WalletEntry.Kind.ADJUSTMENT).exists()


def test_operator_without_change_permission_cannot_move_money(client, wallet):
    user = operator(wallet.customer.tenant, username="viewer")
    user.user_permissions.add(Permission.objects.get(codename="view_wallet"))
    client.force_login(user)
    assert client.get(change_url(wallet)).status_code == 200
    assert client.get(top_up_url(wallet)).status_code == 403
    assert client.post(adjust_url(wallet), {"amount": "5", "reason": "x", "idempotency_key": "k", "_confirm": "1"}).status_code == 403
    wallet.refresh_from_db()
    assert wallet.balance == D("100")


# --- the wallet pages ---------------------------------------------------------------------------


def test_wallet_list_shows_exact_figures_filters_and_search(operator_client, wallet):
    place(wallet, "30.25", "mcp-session-1")
    other = funded_wallet(CustomerFactory(tenant=wallet.tenant, name="Zeta Shortfall"), "5")
    wallet_adjust(
        tenant_id=other.tenant_id, wallet_id=other.pk, amount=D("-7"), idempotency_key="a", reason="fix",
        allow_negative_balance=True,
    )
    listing = operator_client.get(changelist_url(Wallet)).content.decode()
    assert '<td class="field-balance_exact">100</td>' in listing
    assert '<td class="field-held_exact">30.25</td>' in listing
    assert '<td class="field-available_exact">69.75</td>' in listing
    assert "-2 (shortfall)" in listing
    assert f'href="{top_up_url(wallet)}"' in listing

    def listed(query: str) -> set[int]:
        return {row.pk for row in operator_client.get(changelist_url(Wallet) + query).context["cl"].result_list}

    assert listed("") == {wallet.pk, other.pk}
    assert listed("?available=negative") == {other.pk}
    assert listed("?available=held") == {wallet.pk}
    assert listed("?q=Zeta") == {other.pk}
    assert listed(f"?q={wallet.customer.external_id}") == {wallet.pk}


def test_wallet_page_figures_are_read_only_and_thresholds_editable(operator_client, wallet):
    hold = place(wallet, "10", "mcp-session-7")
    page = operator_client.get(change_url(wallet))
    html = page.content.decode()
    assert page.status_code == 200
    assert set(page.context["adminform"].form.fields) == {"low_balance_thresholds"}
    assert 'value="50"' in html and f'href="{top_up_url(wallet)}"' in html and f'href="{adjust_url(wallet)}"' in html
    assert f'href="{change_url(hold)}"' in html and "mcp-session-7" in html  # active holds
    entry = WalletEntry.objects.filter(wallet=wallet).latest("id")
    assert f'href="{change_url(entry)}"' in html  # recent ledger entries
    assert f"wallet__id__exact={wallet.pk}" in html

    # Money moves between the render and the save: the save must not write the old balance back.
    wallet_top_up(tenant_id=wallet.tenant_id, wallet_id=wallet.pk, amount=D("5"), idempotency_key="meanwhile")
    saved = operator_client.post(
        change_url(wallet), {"low_balance_thresholds": "25, 100.50, 25", "balance": "999999", "held": "0"}
    )
    assert saved.status_code == 302
    wallet.refresh_from_db()
    assert wallet.low_balance_thresholds == ["100.5", "25"]
    assert (wallet.balance, wallet.held) == (D("105"), D("10"))
    bad = operator_client.post(change_url(wallet), {"low_balance_thresholds": "10, lots"})
    assert bad.status_code == 200
    assert bad.context["adminform"].form.errors["low_balance_thresholds"] == ["'lots' is not a decimal number."]
    assert wallets_check() == []


def test_wallets_are_added_through_wallet_create(operator_client, wallet):
    customer = wallet.customer
    response = operator_client.post(
        reverse("admin:wallets_wallet_add"), {"customer": customer.pk, "currency": "eur", "low_balance_thresholds": "10, 20"}
    )
    assert response.status_code == 302
    created = Wallet.objects.get(customer=customer, currency="EUR")
    assert (created.tenant_id, created.balance, created.low_balance_thresholds) == (customer.tenant_id, 0, ["20", "10"])
    again = operator_client.post(reverse("admin:wallets_wallet_add"), {"customer": customer.pk, "currency": "USD"})
    assert again.status_code == 200 and "already exists" in again.content.decode()
    for currency in ("XXX", "XTS", "ABC", "hrk"):
        form = {"customer": customer.pk, "currency": currency}
        refused = operator_client.post(reverse("admin:wallets_wallet_add"), form)
        assert refused.status_code == 200, currency
        assert refused.context["adminform"].form.errors["currency"] == [
            "Not an active ISO 4217 currency code (e.g. USD, EUR, JPY); XXX and XTS are not money."
        ]
    assert set(Wallet.objects.filter(customer=customer).values_list("currency", flat=True)) == {"USD", "EUR"}
    assert operator_client.get(reverse("admin:wallets_wallet_delete", args=[wallet.pk])).status_code == 403


# --- ledger, holds, alerts -----------------------------------------------------------------------


@pytest.mark.parametrize("model", [WalletEntry, Hold, LowBalanceAlert], ids=lambda m: m.__name__)
def test_ledger_holds_and_alerts_are_read_only(admin_client, wallet, model):
    place(wallet, "60", "crosses-50")  # a hold, its entry and a low-balance alert
    obj = model._default_manager.filter(wallet=wallet).order_by("pk").first()
    before = model._default_manager.count()
    info = f"admin:{model._meta.app_label}_{model._meta.model_name}"
    assert admin_client.get(reverse(f"{info}_add")).status_code == 403
    assert admin_client.post(change_url(obj), {"reference": "changed"}).status_code == 403
    assert admin_client.post(reverse(f"{info}_delete", args=[obj.pk]), {"post": "yes"}).status_code == 403
    page = admin_client.get(change_url(obj))
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert f'href="{change_url(wallet)}"' in page.content.decode()
    assert model._default_manager.count() == before
    assert b"delete_selected" not in admin_client.get(changelist_url(model)).content


def test_ledger_links_holds_and_rated_events_and_is_searchable(admin_client):
    setup = priced_setup(billing_mode="prepaid")
    wallet = funded_wallet(setup.customer, "10")
    hold = place(wallet, "1", "mcp-session-42")
    rated = ledger_rows(setup, event_id="evt-wallet").rated_event
    with transaction.atomic():
        wallet_charges_record(
            charges=[RatedCharge(
                rated_event_id=rated.pk, tenant_id=setup.tenant.pk, customer_id=setup.customer.pk, currency="USD",
                billing_mode="prepaid", amount=rated.amount, session="mcp-session-42", event_id="evt-wallet",
            )],
            now=timezone.now(),
        )
    debit = WalletEntry.objects.get(wallet=wallet, kind=WalletEntry.Kind.DEBIT)
    assert (debit.hold_id, debit.rated_event_id) == (hold.pk, rated.pk)

    listing = admin_client.get(changelist_url(WalletEntry)).content.decode()
    assert f'href="{change_url(hold)}"' in listing and f'href="{change_url(rated)}"' in listing
    assert '<td class="field-amount_exact">-0.015</td>' in listing

    def listed(query: str) -> set[int]:
        return {row.pk for row in admin_client.get(changelist_url(WalletEntry) + query).context["cl"].result_list}

    entries = set(WalletEntry.objects.filter(wallet=wallet).values_list("pk", flat=True))
    assert listed("?kind__exact=debit") == {debit.pk}
    assert listed("?q=evt-wallet") == {debit.pk}  # the debit's reference is its event id
    assert listed("?q=funding") == set(WalletEntry.objects.filter(kind="top_up", wallet=wallet).values_list("pk", flat=True))
    assert listed(f"?wallet__id__exact={wallet.pk}") == entries
    holds = {row.pk for row in admin_client.get(changelist_url(Hold) + "?q=mcp-session-42").context["cl"].result_list}
    assert holds == {hold.pk}
    hold_page = admin_client.get(change_url(hold)).content.decode()
    assert "mcp-session-42" in hold_page


def test_release_action_reports_per_hold(operator_client, wallet):
    live = place(wallet, "10", "live")
    committed = place(wallet, "20", "done")
    hold_commit(tenant_id=wallet.tenant_id, hold_id=committed.pk, amount=D("15"))
    due = place(wallet, "5", "stale", ttl_seconds=60, now=timezone.now() - timedelta(minutes=5))

    response = operator_client.post(
        changelist_url(Hold),
        {"action": "release_selected", "_selected_action": [live.pk, committed.pk, due.pk]},
        follow=True,
    )

    reported = messages_of(response)
    assert f"Hold #{live.pk} (live) released: 10 USD back to the available balance." in reported
    assert any(m.startswith(f"Hold #{committed.pk} (done) not released") and "committed" in m for m in reported)
    assert any(m.startswith(f"Hold #{due.pk} (stale) was past its expiry") for m in reported)
    assert "Released 1 of 3 selected hold(s)." in reported
    statuses = dict(Hold.objects.filter(wallet=wallet).values_list("pk", "status"))
    assert statuses == {live.pk: "released", committed.pk: "committed", due.pk: "expired"}
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.held, wallet.available) == (D("85"), D("0"), D("85"))
    assert wallets_check() == []


# --- tenant scoping -----------------------------------------------------------------------------


def test_operator_sees_and_moves_only_their_tenants_wallets(operator_client, wallet):
    place(wallet, "60", "mine")
    theirs = funded_wallet(priced_setup().customer, "100", thresholds=["50"])
    their_hold = place(theirs, "60", "theirs")

    for model in (Wallet, WalletEntry, Hold, LowBalanceAlert):
        listed = {row.pk for row in operator_client.get(changelist_url(model)).context["cl"].result_list}
        mine = set(model._default_manager.filter(tenant=wallet.tenant).values_list("pk", flat=True))
        assert listed == mine and mine, model.__name__
        foreign = model._default_manager.filter(tenant=theirs.tenant).first()
        assert operator_client.get(change_url(foreign)).url == reverse("admin:index"), model.__name__

    assert operator_client.get(top_up_url(theirs)).status_code == 403
    key = "k" * 32
    assert operator_client.post(top_up_url(theirs), {"amount": "5", "idempotency_key": key}).status_code == 403
    assert operator_client.post(adjust_url(theirs), {"amount": "5", "reference": "x", "idempotency_key": key}).status_code == 403
    operator_client.post(changelist_url(Hold), {"action": "release_selected", "_selected_action": [their_hold.pk]})
    their_hold.refresh_from_db()
    theirs.refresh_from_db()
    assert their_hold.status == "active" and (theirs.balance, theirs.held) == (D("100"), D("60"))
    add_form = operator_client.get(reverse("admin:wallets_wallet_add")).context["adminform"].form
    assert theirs.customer not in add_form.fields["customer"].queryset


@pytest.mark.parametrize("model", [Wallet, WalletEntry, Hold, LowBalanceAlert], ids=lambda m: m.__name__)
def test_changelists_make_no_n_plus_one_queries(admin_client, django_assert_max_num_queries, model):
    tenant = priced_setup().tenant

    def wallets_with_a_hold_and_an_alert(count: int) -> None:
        for index in range(count):
            wallet = funded_wallet(CustomerFactory(tenant=tenant), "100", thresholds=["50"])
            place(wallet, "60", f"session-{index}")

    wallets_with_a_hold_and_an_alert(1)
    admin_client.get(changelist_url(model))  # warm the session and content types
    with django_assert_max_num_queries(30) as few:
        admin_client.get(changelist_url(model))
    wallets_with_a_hold_and_an_alert(8)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = admin_client.get(changelist_url(model))
    assert response.context["cl"].result_count == model._default_manager.count() >= 9


def test_ledger_currency_filter_comes_from_the_wallets(admin_client, wallet):
    euros = funded_wallet(wallet.customer, "7", currency="EUR")
    response = admin_client.get(changelist_url(WalletEntry) + "?currency=EUR")
    assert {row.wallet_id for row in response.context["cl"].result_list} == {euros.pk}
    assert 'href="?currency=USD"' in response.content.decode()
