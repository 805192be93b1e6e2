"""Cancelling a subscription: `subscription_cancel` (now or at a later end, with the required
reason, never backdated, never twice) and its admin page — the change page's "Cancel
subscription" button opens a confirmation that shows the subscription and what will happen and
asks for the reason and the end; nothing changes until it is confirmed with a reason; the change
form cannot cancel by editing the status."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from catalog import services
from catalog.generation import catalog_generation_get_many
from catalog.models import Subscription
from tests.factories import priced_setup
from tests.test_admin import change_url, operator

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup():
    return priced_setup()


@pytest.fixture
def operator_client(client, setup):
    client.force_login(operator(setup.tenant))
    return client


def cancel_url(subscription: Subscription) -> str:
    return reverse("admin:catalog_subscription_cancel", args=[subscription.pk])


def fresh(subscription: Subscription) -> Subscription:
    return Subscription.objects.get(pk=subscription.pk)


# --- the service --------------------------------------------------------------------------------


def test_cancel_now_or_at_a_later_end_stores_the_reason_and_advances_the_catalog_generation(setup):
    tenant_id = setup.tenant.pk
    before = catalog_generation_get_many(tenant_ids=[tenant_id])[tenant_id]
    now = timezone.now()
    canceled = services.subscription_cancel(subscription=setup.subscription, reason=" moved to a competitor ", now=now)
    assert (canceled.status, canceled.ended_at, canceled.canceled_at) == ("canceled", now, now)
    assert canceled.canceled_reason == "moved to a competitor"
    assert catalog_generation_get_many(tenant_ids=[tenant_id])[tenant_id] > before  # the consumer sees the end

    later = priced_setup()
    end = now + timedelta(days=10)
    at_end = services.subscription_cancel(subscription=later.subscription, reason="end of contract", ended_at=end, now=now)
    assert (at_end.status, at_end.ended_at, at_end.canceled_at) == ("canceled", end, now)


def test_cancel_refuses_no_reason_a_past_end_and_a_second_cancellation(setup):
    subscription = setup.subscription
    for reason in ("", "   ", "x" * 501):
        with pytest.raises(ValidationError) as refused:
            services.subscription_cancel(subscription=subscription, reason=reason)
        assert "reason" in refused.value.message_dict
    with pytest.raises(ValidationError) as past:
        services.subscription_cancel(subscription=subscription, reason="r", ended_at=timezone.now() - timedelta(hours=1))
    assert "never backdated" in past.value.message_dict["ended_at"][0]
    assert fresh(subscription).status == "active" and fresh(subscription).ended_at is None
    services.subscription_cancel(subscription=subscription, reason="first")
    with pytest.raises(ValidationError) as twice:
        services.subscription_cancel(subscription=subscription, reason="second")
    assert "Already canceled" in twice.value.messages[0]
    assert fresh(subscription).canceled_reason == "first"


# --- the admin ----------------------------------------------------------------------------------


def test_the_change_page_offers_cancel_and_the_confirmation_changes_nothing_without_a_reason(operator_client, setup):
    subscription = setup.subscription
    change_page = operator_client.get(change_url(subscription)).content.decode()
    assert f'href="{cancel_url(subscription)}"' in change_page

    page = operator_client.get(cancel_url(subscription))
    html = page.content.decode()
    assert page.status_code == 200 and page.templates[0].name == "admin/confirm_destructive.html"
    assert page.context["subject_rows"][0][:2] == [setup.customer.name, str(setup.subscription.rate_plan)]
    assert any("no longer rate against it" in c for c in page.context["consequences"])
    assert 'name="reason"' in html and 'name="when"' in html and 'name="ended_at"' in html

    no_reason = operator_client.post(cancel_url(subscription), {"_confirm": "1", "when": "now", "reason": ""})
    assert no_reason.status_code == 200 and no_reason.context["form"].errors["reason"]
    no_end = operator_client.post(cancel_url(subscription), {"_confirm": "1", "when": "at", "reason": "r"})
    assert no_end.context["form"].errors["ended_at"] == ["Give the end, or choose “Now”."]
    past = (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%d %H:%M")
    backdated = operator_client.post(cancel_url(subscription), {"_confirm": "1", "when": "at", "reason": "r", "ended_at": past})
    assert "never backdated" in backdated.context["form"].errors["ended_at"][0]
    unconfirmed = operator_client.post(cancel_url(subscription), {"when": "now", "reason": "r"})  # no confirm button
    assert unconfirmed.status_code == 200 and not unconfirmed.context["form"].is_bound
    assert (fresh(subscription).status, fresh(subscription).ended_at) == ("active", None)


def test_confirmed_cancellation_at_a_later_end_stores_the_reason(operator_client, setup):
    subscription = setup.subscription
    end = (timezone.now() + timedelta(days=30)).replace(second=0, microsecond=0)
    form = {"_confirm": "1", "when": "at", "ended_at": end.strftime("%Y-%m-%d %H:%M"), "reason": "end of the pilot"}
    done = operator_client.post(cancel_url(subscription), form, follow=True)
    assert done.redirect_chain == [(change_url(subscription), 302)]
    canceled = fresh(subscription)
    assert (canceled.status, canceled.ended_at, canceled.canceled_reason) == ("canceled", end, "end of the pilot")
    assert canceled.canceled_at is not None and canceled.canceled_at < end
    assert LogEntry.objects.filter(object_id=str(subscription.pk), change_message__contains="end of the pilot").exists()
    page = done.content.decode()
    assert "end of the pilot" in page and f'href="{cancel_url(subscription)}"' not in page  # no second cancel
    again = operator_client.post(cancel_url(subscription), {**form, "reason": "again"})
    assert "Already canceled" in again.context["form"].non_field_errors()[0]
    assert fresh(subscription).canceled_reason == "end of the pilot"


def test_the_change_form_cannot_cancel_by_editing_the_status(operator_client, setup):
    subscription = setup.subscription
    page = operator_client.get(change_url(subscription))
    form = page.context["adminform"].form
    assert "ended_at" not in form.fields  # read-only: a subscription ends through "Cancel subscription"
    data = {name: form[name].value() or "" for name in form.fields}
    data |= {"status": "canceled", "started_at_0": "", "started_at_1": "", "billing_anchor_0": "", "billing_anchor_1": ""}
    for name in ("started_at", "billing_anchor"):
        moment = getattr(subscription, name)
        data |= {f"{name}_0": f"{moment:%Y-%m-%d}", f"{name}_1": f"{moment:%H:%M:%S}"}
    refused = operator_client.post(change_url(subscription), data)
    assert refused.status_code == 200
    assert "Cancel subscription" in refused.context["adminform"].form.errors["status"][0]
    assert fresh(subscription).status == "active"
