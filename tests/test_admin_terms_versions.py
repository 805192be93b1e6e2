"""The subscription's admin page and its terms versions: the versions inline (read-only rows; a new
row adds a version, refused before the current billing period unless ticked retroactive), and a
change of the terms fields on the page, which adds a version effective now."""

from __future__ import annotations

from datetime import UTC, timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from catalog.models import Subscription, SubscriptionTermsVersion
from catalog.terms import terms_version_add
from tests.factories import priced_setup
from tests.test_admin import change_url, operator

pytestmark = pytest.mark.django_db
DAY = timedelta(days=1)
PREFIX = "terms_versions"


def this_month():
    return timezone.now().astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


@pytest.fixture
def setup():
    return priced_setup(rate="1", started_at=(this_month() - 40 * DAY).replace(day=1), metric_code="calls")


@pytest.fixture
def operator_client(setup):
    client = Client()
    client.force_login(operator(setup.tenant))
    return client


def page_data(client, subscription, **changes):
    """The change page's form as it is (with its versions inline's management form), and `changes`."""
    page = client.get(change_url(subscription))
    form = page.context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data = {name: ("" if value is None else value) for name, value in data.items()}
    for name in ("started_at", "billing_anchor"):
        moment = getattr(subscription, name)
        data.pop(name, None)
        data |= {f"{name}_0": f"{moment:%Y-%m-%d}", f"{name}_1": f"{moment:%H:%M:%S}"}
    data["metric_minimums"] = form["metric_minimums"].value() or "{}"
    existing = list(SubscriptionTermsVersion.objects.filter(subscription=subscription).order_by("effective_from", "id"))
    data |= {f"{PREFIX}-TOTAL_FORMS": str(len(existing)), f"{PREFIX}-INITIAL_FORMS": str(len(existing)),
             f"{PREFIX}-MIN_NUM_FORMS": "0", f"{PREFIX}-MAX_NUM_FORMS": "1000"}
    for index, version in enumerate(existing):
        data |= {f"{PREFIX}-{index}-id": str(version.pk), f"{PREFIX}-{index}-subscription": str(subscription.pk)}
    return page, data | changes


def new_row(data, *, effective_from, **values):
    index = int(data[f"{PREFIX}-TOTAL_FORMS"])
    row = {"spend_cap_action": "cap", "net_terms_days": "30", "invoice_grace_hours": "0", "metric_minimums": "{}",
           "min_commitment": "", "spend_cap": "", "invoice_threshold": "", "reason": "", **values}
    data = data | {f"{PREFIX}-{index}-{name}": value for name, value in row.items()}
    data |= {f"{PREFIX}-{index}-effective_from_0": f"{effective_from:%Y-%m-%d}",
             f"{PREFIX}-{index}-effective_from_1": f"{effective_from:%H:%M:%S}",
             f"{PREFIX}-{index}-subscription": data["id"] if "id" in data else "", f"{PREFIX}-TOTAL_FORMS": str(index + 1)}
    return data


def test_the_page_lists_the_versions_and_a_new_row_adds_one(operator_client, setup):
    subscription = setup.subscription
    terms_version_add(subscription=subscription, values={"min_commitment": Decimal(100)}, reason="renewal")
    page, data = page_data(operator_client, subscription)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Terms versions" in html and "renewal" in html
    next_month = (this_month() + 32 * DAY).replace(day=1)
    posted = operator_client.post(change_url(subscription), new_row(
        data, effective_from=next_month, min_commitment="250", metric_minimums='{"calls": "40"}', reason="upgrade"))
    assert posted.status_code == 302, posted.context["inline_admin_formsets"][0].formset.errors if posted.context else posted
    newest = SubscriptionTermsVersion.objects.filter(subscription=subscription).latest("id")
    assert (newest.effective_from, newest.min_commitment, newest.metric_minimums, newest.reason) == (
        next_month, Decimal(250), {"calls": "40"}, "upgrade")
    assert Subscription.objects.get(pk=subscription.pk).min_commitment == Decimal(100)  # in effect next month only


def test_a_row_before_the_current_period_needs_retroactive_and_bad_minimums_are_refused(operator_client, setup):
    subscription = setup.subscription
    _, data = page_data(operator_client, subscription)
    past = this_month() - DAY
    refused = operator_client.post(change_url(subscription), new_row(data, effective_from=past, min_commitment="5"))
    assert refused.status_code == 200
    errors = refused.context["inline_admin_formsets"][0].formset.errors[-1]
    assert "Before the current billing period" in errors["effective_from"][0]
    unknown = operator_client.post(change_url(subscription), new_row(
        data, effective_from=timezone.now() + DAY, metric_minimums='{"nope": "5"}'))
    assert "not a metric priced" in unknown.context["inline_admin_formsets"][0].formset.errors[-1]["metric_minimums"][0]
    assert not SubscriptionTermsVersion.objects.filter(subscription=subscription).exists()
    allowed = operator_client.post(change_url(subscription), new_row(
        data, effective_from=past, min_commitment="5", retroactive_correction="on"))
    assert allowed.status_code == 302
    assert SubscriptionTermsVersion.objects.filter(subscription=subscription, retroactive=True).count() == 1


def test_changing_the_terms_fields_adds_a_version_effective_now(operator_client, setup):
    subscription = setup.subscription
    _, data = page_data(operator_client, subscription, spend_cap="75", metric_minimums='{"calls": "12.5"}')
    posted = operator_client.post(change_url(subscription), data)
    assert posted.status_code == 302, posted.context["adminform"].form.errors if posted.context else posted
    versions = list(SubscriptionTermsVersion.objects.filter(subscription=subscription).order_by("id"))
    assert [(v.spend_cap, v.metric_minimums) for v in versions] == [(None, {}), (Decimal(75), {"calls": "12.5"})]
    stored = Subscription.objects.get(pk=subscription.pk)
    assert (stored.spend_cap, stored.terms_version_id) == (Decimal(75), versions[-1].pk)
    _, data = page_data(operator_client, stored, metric_minimums='{"calls": 1.5}')
    refused = operator_client.post(change_url(stored), data)
    assert refused.status_code == 200 and "metric_minimums" in refused.context["adminform"].form.errors


def test_a_subscription_added_in_the_admin_gets_its_first_version(operator_client, setup):
    from django.urls import reverse

    start = this_month()
    form = {
        "customer": setup.customer.pk, "offering": setup.subscription.offering_id, "rate_plan": setup.rate_plan.pk,
        "billing_mode": "postpaid", "billing_cadence": "monthly", "billing_anchor_0": f"{start:%Y-%m-%d}",
        "billing_anchor_1": "00:00:00", "currency": "USD", "status": "active", "started_at_0": f"{start:%Y-%m-%d}",
        "started_at_1": "00:00:00", "spend_cap_action": "cap", "net_terms_days": "30", "invoice_grace_hours": "0",
        "min_commitment": "40", "metric_minimums": '{"calls": "10"}',
    }
    added = operator_client.post(reverse("admin:catalog_subscription_add"), form)
    assert added.status_code == 302, added.context["adminform"].form.errors if added.context else added
    subscription = Subscription.objects.exclude(pk=setup.subscription.pk).get()
    [version] = SubscriptionTermsVersion.objects.filter(subscription=subscription)
    assert (version.effective_from, version.min_commitment, version.metric_minimums) == (start, Decimal(40), {"calls": "10"})
    assert subscription.terms_version_id == version.pk
