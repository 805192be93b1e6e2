"""Versions of a subscription's settlement terms (catalog.terms): which version governs a period,
the first period a new one governs, the retroactive rule, the subscription's copy of the version
in effect now, and the API (GET/POST /subscriptions/{id}/terms, PATCH of the fields) with its
validation and hostile bodies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from catalog.models import Subscription, SubscriptionTermsVersion, TermsVersionImmutable
from catalog.terms import (
    TermsRetroactive,
    subscription_terms_sync,
    terms_first_period,
    terms_version_add,
    terms_version_governing,
)
from tests.factories import MetricFactory, priced_setup

DAY = timedelta(days=1)


def this_month() -> datetime:
    return timezone.now().astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


# --- pure ----------------------------------------------------------------------------------------


@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 5)), min_size=1, max_size=8), st.integers(-2, 25))
def test_the_governing_version_is_the_latest_in_effect_the_later_created_of_a_tie(versions, day):
    base = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        SubscriptionTermsVersion(pk=index + 1, effective_from=base + offset * DAY, net_terms_days=net)
        for index, (offset, net) in enumerate(versions)
    ]
    at = base + day * DAY
    got = terms_version_governing(versions=rows, at=at)
    in_effect = [row for row in rows if row.effective_from <= at]
    if not in_effect:  # before the first: the first
        assert got.effective_from == min(row.effective_from for row in rows)
        return
    latest = max(row.effective_from for row in in_effect)
    assert got.effective_from == latest and got.pk == max(row.pk for row in in_effect if row.effective_from == latest)


def test_a_version_effective_mid_period_first_governs_the_next_period():
    start = datetime(2026, 10, 1, tzinfo=UTC)
    subscription = Subscription(billing_cadence="monthly", billing_anchor=start, started_at=start)
    november = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    assert terms_first_period(subscription=subscription, effective_from=datetime(2026, 10, 15, tzinfo=UTC)) == november
    assert terms_first_period(subscription=subscription, effective_from=november[0]) == november  # at its start: that one
    assert terms_first_period(subscription=subscription, effective_from=start - 40 * DAY)[0] == start  # before: the first


# --- services --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_version_before_the_current_period_is_refused_unless_retroactive():
    setup = priced_setup(rate="1", started_at=(this_month() - 70 * DAY).replace(day=1))
    subscription = setup.subscription
    with pytest.raises(TermsRetroactive) as refused:
        terms_version_add(subscription=subscription, values={"min_commitment": Decimal(50)},
                          effective_from=this_month() - DAY)
    assert refused.value.period_start == this_month()
    assert not SubscriptionTermsVersion.objects.filter(subscription=subscription).exists()  # nothing written
    added = terms_version_add(subscription=subscription, values={"min_commitment": Decimal(50)},
                              effective_from=this_month() - DAY, retroactive=True, reason="contract signed late")
    assert added.version.retroactive and added.first_period[0] == this_month()
    # the baseline (the fields before the change, from the start) and the correction
    assert list(SubscriptionTermsVersion.objects.filter(subscription=subscription).values_list("min_commitment", flat=True)) == [
        None, Decimal(50)]
    subscription.refresh_from_db()
    assert subscription.min_commitment == Decimal(50) and subscription.terms_version_id == added.version.pk
    with pytest.raises(TermsVersionImmutable):
        added.version.save()
    with pytest.raises(TermsVersionImmutable):
        added.version.delete()


@pytest.mark.django_db
def test_a_later_version_is_copied_onto_the_subscription_when_it_takes_effect():
    setup = priced_setup(rate="1", started_at=(this_month() - 70 * DAY).replace(day=1))
    subscription = setup.subscription
    now = timezone.now()
    later = now + 2 * DAY
    added = terms_version_add(subscription=subscription, values={"spend_cap": Decimal(500), "net_terms_days": 10},
                              effective_from=later, now=now)
    subscription.refresh_from_db()
    assert subscription.spend_cap is None and subscription.net_terms_days == 30  # not in effect yet: the fields stay
    assert subscription_terms_sync(now=now) == 0
    assert subscription_terms_sync(now=later) == 1
    subscription.refresh_from_db()
    assert (subscription.spend_cap, subscription.net_terms_days, subscription.terms_version_id) == (
        Decimal(500), 10, added.version.pk)
    assert subscription_terms_sync(now=later) == 0  # idempotent


# --- API -------------------------------------------------------------------------------------------


@pytest.fixture
def subscribed(client_for):
    setup = priced_setup(rate="1", started_at=(this_month() - 70 * DAY).replace(day=1), metric_code="calls")
    setup.client = client_for(setup.tenant)
    setup.url = f"/api/v1/subscriptions/{setup.subscription.pk}/terms"
    return setup


@pytest.mark.django_db
def test_post_a_version_says_the_first_period_it_governs_and_get_lists_them(subscribed):
    client, url = subscribed.client, subscribed.url
    effective = timezone.now()
    created = client.post(url, {"min_commitment": "100.00", "metric_minimums": {"calls": "25.5"},
                                "effective_from": effective.isoformat(), "reason": "renewal"})
    assert created.status_code == 201, created.content
    body = created.json()
    next_start = (this_month() + 32 * DAY).replace(day=1)
    assert body["first_period"]["start"] == next_start.isoformat()  # added mid-period: from the next one
    assert (body["min_commitment"], body["metric_minimums"], body["in_effect_now"]) == ("100", {"calls": "25.5"}, True)
    listed = client.get(url).json()
    assert [v["min_commitment"] for v in listed] == [None, "100"] and listed[0]["first_period"]["start"] < body["first_period"]["start"]
    subscription = client.get(f"/api/v1/subscriptions/{subscribed.subscription.pk}").json()
    assert subscription["min_commitment"] == "100" and subscription["terms_version"] == body["id"]
    assert subscription["metric_minimums"] == {"calls": "25.5"}


@pytest.mark.django_db
def test_a_patch_of_the_terms_is_a_new_version_and_a_past_one_a_409(subscribed):
    client, subscription = subscribed.client, subscribed.subscription
    patched = client.patch(f"/api/v1/subscriptions/{subscription.pk}", {"spend_cap": "80", "spend_cap_action": "alert"})
    assert patched.status_code == 200, patched.content
    assert (patched.json()["spend_cap"], patched.json()["spend_cap_action"]) == ("80", "alert")
    assert SubscriptionTermsVersion.objects.filter(subscription=subscription).count() == 2  # baseline + the change
    unchanged = client.patch(f"/api/v1/subscriptions/{subscription.pk}", {"spend_cap": "80", "customer_may_change_plan": True})
    assert unchanged.status_code == 200 and SubscriptionTermsVersion.objects.filter(subscription=subscription).count() == 2
    past = client.patch(f"/api/v1/subscriptions/{subscription.pk}",
                        {"spend_cap": "90", "terms_effective_from": (this_month() - DAY).isoformat()})
    assert past.status_code == 409
    error = past.json()["error"]
    assert (error["code"], error["field"], error["current_period_start"]) == (
        "terms_retroactive", "effective_from", this_month().isoformat())
    assert Subscription.objects.get(pk=subscription.pk).spend_cap == Decimal(80)  # nothing changed
    refused = subscribed.client.post(subscribed.url, {"min_commitment": "5", "effective_from": (this_month() - DAY).isoformat()})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "terms_retroactive"
    allowed = subscribed.client.post(subscribed.url, {"min_commitment": "5", "retroactive": True,
                                                      "effective_from": (this_month() - DAY).isoformat()})
    assert allowed.status_code == 201 and allowed.json()["retroactive"] is True


@pytest.mark.django_db
@pytest.mark.parametrize(("body", "field"), [
    ({"min_commitment": 1.5}, "min_commitment"),  # a JSON float
    ({"min_commitment": "-1"}, "min_commitment"),
    ({"spend_cap": "1e400"}, "spend_cap"),
    ({"spend_cap_action": "block"}, "spend_cap_action"),
    ({"net_terms_days": 366}, "net_terms_days"),
    ({"invoice_grace_hours": -1}, "invoice_grace_hours"),
    ({"metric_minimums": {"unknown_metric": "5"}}, "metric_minimums"),
    ({"metric_minimums": {"calls": 2.5}}, "metric_minimums"),
    ({"metric_minimums": {"calls": "-1"}}, "metric_minimums"),
    ({"metric_minimums": {"calls": "NaN"}}, "metric_minimums"),
    ({"metric_minimums": {"calls": "0.0000001"}}, "metric_minimums"),
    ({"metric_minimums": {"calls": {"nested": []}}}, "metric_minimums"),
    ({"metric_minimums": ["calls", "5"]}, "metric_minimums"),
    ({"metric_minimums": {"calls\u0000": "5"}}, "metric_minimums"),
    ({"effective_from": "yesterday"}, "effective_from"),
    ({"reason": "x" * 501}, "reason"),
    ({"reason": "a\u0000b"}, "reason"),
    ({"retroactive": "perhaps"}, "retroactive"),
])
def test_invalid_terms_are_a_400_naming_the_field(subscribed, body, field):
    response = subscribed.client.post(subscribed.url, body)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error" and field in error["fields"]
    assert not SubscriptionTermsVersion.objects.filter(subscription=subscribed.subscription).exists()


@pytest.mark.django_db
def test_hostile_bodies_and_other_tenants(subscribed, client_for):
    for body in ([], "text", 7, None, {"metric_minimums": "x" * 100_000}):
        response = subscribed.client.post(subscribed.url, body)
        assert response.status_code == 400, (body, response.content)
    other = priced_setup(rate="1", metric_code="other_calls")
    # a metric of another tenant (or of no plan of the subscription) is not one of its metrics
    MetricFactory(tenant=subscribed.tenant, product=subscribed.metric.product, code="unpriced")
    for code in ("other_calls", "unpriced"):
        response = subscribed.client.post(subscribed.url, {"metric_minimums": {code: "1"}})
        assert response.status_code == 400 and "metric_minimums" in response.json()["error"]["fields"]
    assert client_for(other.tenant).get(subscribed.url).status_code == 404
    assert client_for(other.tenant).post(subscribed.url, {"min_commitment": "1"}).status_code == 404
    assert subscribed.client.put(subscribed.url, {}).status_code == 405


@pytest.mark.django_db
def test_a_retried_post_adds_nothing_and_a_patch_can_take_effect_later(subscribed):
    client, url, subscription = subscribed.client, subscribed.url, subscribed.subscription
    body = {"min_commitment": "100", "metric_minimums": {"calls": "25.50"}, "effective_from": timezone.now().isoformat()}
    first = client.post(url, body)
    again = client.post(url, {**body, "effective_from": timezone.now().isoformat()})  # the retry, a moment later
    assert (first.status_code, again.status_code) == (201, 200) and again.json()["id"] == first.json()["id"]
    next_month = (this_month() + 32 * DAY).replace(day=1)
    later = client.patch(f"/api/v1/subscriptions/{subscription.pk}",
                         {"min_commitment": "300", "terms_effective_from": next_month.isoformat()})
    assert later.status_code == 200 and later.json()["min_commitment"] == "100"  # the version in effect now
    versions = client.get(url).json()
    assert [(v["min_commitment"], v["first_period"]["start"], v["in_effect_now"]) for v in versions[1:]] == [
        ("100", next_month.isoformat(), True), ("300", next_month.isoformat(), False)]


@pytest.mark.django_db
def test_a_subscription_created_over_the_api_gets_its_first_version(subscribed):
    client, setup = subscribed.client, subscribed
    body = {"customer": setup.customer.pk, "offering": setup.subscription.offering_id, "rate_plan": setup.rate_plan.pk,
            "started_at": this_month().isoformat(), "min_commitment": "10", "metric_minimums": {"calls": "4"}}
    refused = client.post("/api/v1/subscriptions", {**body, "metric_minimums": {"calls": "x"}})
    assert refused.status_code == 400 and "metric_minimums" in refused.json()["error"]["fields"]
    created = client.post("/api/v1/subscriptions", body)
    assert created.status_code == 201, created.content
    [version] = client.get(f"/api/v1/subscriptions/{created.json()['id']}/terms").json()
    assert (version["effective_from"], version["min_commitment"], version["metric_minimums"]) == (
        this_month().isoformat().replace("+00:00", "Z"), "10", {"calls": "4"})
    assert created.json()["terms_version"] == version["id"]


@pytest.mark.django_db
def test_the_data_migration_gives_every_subscription_its_terms_as_a_first_version():
    import importlib

    from django.apps import apps

    migration = importlib.import_module("catalog.migrations.0011_subscription_terms_versions")
    setup = priced_setup(rate="1")
    Subscription.objects.filter(pk=setup.subscription.pk).update(min_commitment=Decimal(70), net_terms_days=14)
    migration.first_versions(apps, None)
    migration.first_versions(apps, None)  # run again: nothing more
    subscription = Subscription.objects.get(pk=setup.subscription.pk)
    [version] = SubscriptionTermsVersion.objects.filter(subscription=subscription)
    assert (version.effective_from, version.min_commitment, version.net_terms_days, version.created_at) == (
        subscription.started_at, Decimal(70), 14, subscription.created_at)
    assert subscription.terms_version_id == version.pk


@pytest.mark.django_db
def test_the_sync_task_is_on_the_one_beat_schedule_and_runs_the_sweep():
    from aforo.celery import app
    from catalog import tasks

    entry = app.conf.beat_schedule["subscription-terms-sync"]
    assert entry["task"] == tasks.terms_sync.name == "catalog.tasks.subscription_terms_sync"
    setup = priced_setup(rate="1", started_at=(this_month() - 70 * DAY).replace(day=1))
    terms_version_add(subscription=setup.subscription, values={"invoice_threshold": Decimal(9)},
                      effective_from=timezone.now() - timedelta(seconds=1), now=timezone.now() - timedelta(seconds=2))
    assert Subscription.objects.get(pk=setup.subscription.pk).invoice_threshold is None  # added before it took effect
    assert tasks.terms_sync() == 1
    assert Subscription.objects.get(pk=setup.subscription.pk).invoice_threshold == Decimal(9)
