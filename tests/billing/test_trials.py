"""Trials through the real rating path, settlement and API: a trial ends at a date (the sweep
records it at that date exactly) or when the trial metric's free units reach a threshold (the
rating batch converts it; the crossing event is the last free one); usage before the conversion
is rated at zero and settles on a "Trial usage — free" line; fixed fees and the minimum
commitment are prorated from the conversion; converting is once (sweep twice, end-trial twice)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from billing.models import RatedEvent, TrialConversion, TrialUsage
from billing.settlement import settlement_run
from billing.trials.plan import TICK
from billing.trials.services import trials_due_convert
from billing.usage import IncomingEvent, usage_batch_record
from billing.verification import ledger_verify
from catalog.models import Subscription, TenantToken
from metering.enrichment import EnrichmentCache
from metering.validation import validate_event
from notify.models import WebhookDelivery
from notify.services import webhook_endpoint_create
from tests.factories import MetricFactory, priced_setup, tenant_token

pytestmark = pytest.mark.django_db
OCT, NOV = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
TRIAL_END = datetime(2026, 10, 11, tzinfo=UTC)  # 21 of October's 31 days paid
BASE_31 = {"model": "graduated", "tiers": [{"up_to": None, "unit_amount": "1", "flat_amount": "31"}]}


def with_trial(setup, **fields):
    subscription = Subscription.objects.get(pk=setup.subscription.pk)
    for name, value in fields.items():
        setattr(subscription, name, value)
    subscription.full_clean()
    subscription.save()
    setup.subscription = subscription
    return setup


def batch(setup, *events):
    """(event_id, quantity, timestamp) in ONE rating batch, as the consumer records it; their rated records."""
    now = timezone.now()
    incoming = []
    for event_id, quantity, at in events:
        event = validate_event(
            {"event_id": event_id, "api_key": setup.api_key, "metric": setup.metric.code, "quantity": quantity,
             "timestamp": at.isoformat()},
            now=now,
        )
        incoming.append(IncomingEvent(setup.tenant.id, event.subject, event, now, 0, None))
    outcome = usage_batch_record(events=incoming, cache=EnrichmentCache())
    assert len(outcome.rated) == len(events), outcome
    return outcome.rated


def charged(records):
    return [(r.event_id, r.trial, r.amount) for r in records]


def lines(invoice):
    return [(line.kind, line.trial, line.amount) for line in invoice.lines.order_by("position")]


def hook(setup):
    webhook_endpoint_create(tenant_id=setup.tenant.id, url="https://hooks.example.com/aforo", event_types=["subscription.trial_converted"])


def test_a_date_trial_bills_by_timestamp_before_the_sweep_and_the_sweep_converts_once_at_the_date():
    setup = with_trial(priced_setup(rate="1", started_at=OCT), trial_ends_at=TRIAL_END)
    hook(setup)
    rated = batch(setup, ("before", "5", TRIAL_END - timedelta(days=1)), ("after", "2", TRIAL_END + timedelta(days=1)),
                  ("at-the-end", "1", TRIAL_END))
    assert charged(rated) == [("before", True, 0), ("after", False, 2), ("at-the-end", False, 1)]
    assert not TrialConversion.objects.exists()  # not swept yet: billed by timestamp all the same
    now = TRIAL_END + timedelta(days=30)
    assert trials_due_convert(now=now) == 1
    assert trials_due_convert(now=now) == 0  # idempotent
    conversion = TrialConversion.objects.get()
    assert (conversion.cause, conversion.converted_at) == ("date", TRIAL_END)
    assert Subscription.objects.get(pk=setup.subscription.pk).trial_converted_at == TRIAL_END
    assert WebhookDelivery.objects.filter(event_type="subscription.trial_converted").count() == 1
    # Late events after the conversion: free before its instant, billed from it.
    late = batch(setup, ("late-free", "3", TRIAL_END - TICK), ("late-billed", "4", TRIAL_END + timedelta(hours=1)))
    assert charged(late) == [("late-free", True, 0), ("late-billed", False, 4)]
    assert TrialUsage.objects.get().free_events == 2


def test_a_usage_trial_converts_within_a_batch_at_the_crossing_event():
    setup = priced_setup(rate="1", started_at=OCT)
    with_trial(setup, trial_metric=setup.metric, trial_units=Decimal(10))
    hook(setup)
    day = OCT + timedelta(days=3)
    rated = batch(setup, ("a", "4", day), ("b", "5", day + timedelta(minutes=1)), ("crossing", "3", day + timedelta(minutes=2)),
                  ("paid", "2", day + timedelta(minutes=3)))
    assert charged(rated) == [("a", True, 0), ("b", True, 0), ("crossing", True, 0), ("paid", False, 2)]
    # The running total counts the trial's units first: the paid ones are priced from 12 on.
    assert [(r.units_before, r.units_after) for r in rated][-1] == (Decimal(12), Decimal(14))
    conversion = TrialConversion.objects.get()
    assert (conversion.cause, conversion.event_id, conversion.units_used) == ("usage", "crossing", Decimal(12))
    assert conversion.converted_at == day + timedelta(minutes=2) + TICK
    assert conversion.raw_event_id == RatedEvent.objects.get(raw_event__event_id="crossing").raw_event_id
    assert Subscription.objects.get(pk=setup.subscription.pk).trial_converted_at == conversion.converted_at
    assert WebhookDelivery.objects.filter(event_type="subscription.trial_converted").count() == 1
    # A later batch with a fresh cache: late events before the instant free (past the threshold), after it billed.
    late = batch(setup, ("late", "7", day + timedelta(minutes=1)), ("more", "1", day + timedelta(hours=1)))
    assert charged(late) == [("late", True, 0), ("more", False, 1)]
    assert TrialUsage.objects.get().units == Decimal(19) and TrialConversion.objects.count() == 1


def test_an_exact_crossing_across_batches_and_an_out_of_order_one():
    setup = priced_setup(rate="1", started_at=OCT)
    with_trial(setup, trial_metric=setup.metric, trial_units=Decimal(10))
    day = OCT + timedelta(days=3)
    assert charged(batch(setup, ("a", "4", day + timedelta(minutes=5)))) == [("a", True, 0)]
    # Stamped earlier than "a", arriving after it, reaching exactly 10: converts after "a"'s timestamp.
    assert charged(batch(setup, ("b", "6", day))) == [("b", True, 0)]
    assert TrialConversion.objects.get().converted_at == day + timedelta(minutes=5) + TICK
    assert charged(batch(setup, ("c", "1", day + timedelta(minutes=4)), ("d", "1", day + timedelta(minutes=6)))) == [
        ("c", True, 0), ("d", False, 1)]


def test_the_converted_period_settles_a_free_trial_line_and_prorated_fee_and_commitment():
    setup = with_trial(priced_setup(config=BASE_31, started_at=OCT), trial_ends_at=TRIAL_END, min_commitment=Decimal(62))
    batch(setup, ("free-1", "100", OCT + timedelta(days=5)), ("free-2", "20", OCT + timedelta(days=6)),
          ("paid", "10", OCT + timedelta(days=20)))
    trials_due_convert(now=NOV)
    invoice = settlement_run(subscription_id=setup.subscription.pk, at=OCT + timedelta(days=20)).invoice
    # base 31 × 21/31 = 21; minimum 62 × 21/31 = 42 → true-up 42 − (10 + 21) = 11
    assert lines(invoice) == [
        ("usage", True, Decimal("0.00")), ("usage", False, Decimal("10.00")), ("base", False, Decimal("21.00")),
        ("commitment", False, Decimal("11.00")),
    ]
    trial_line = invoice.lines.get(trial=True)
    assert trial_line.description.endswith("120 units — Trial usage — free") and trial_line.event_count == 2
    assert "from the trial's conversion (2026-10-11 00:00 UTC)" in invoice.lines.get(kind="base").description
    assert ledger_verify() == []
    from billing.trace import invoice_line_rated_events

    assert [r.raw_event.event_id for r in invoice_line_rated_events(line=trial_line, subscription_id=setup.subscription.pk)] == [
        "free-1", "free-2"]


def test_a_period_all_in_trial_charges_no_fee_and_no_commitment():
    setup = priced_setup(config=BASE_31, started_at=OCT)
    with_trial(setup, trial_metric=setup.metric, trial_units=Decimal(1000), min_commitment=Decimal(62))
    batch(setup, ("free", "100", OCT + timedelta(days=5)))
    invoice = settlement_run(subscription_id=setup.subscription.pk, at=OCT + timedelta(days=20)).invoice
    assert lines(invoice) == [("usage", True, Decimal("0.00"))] and invoice.total == 0
    assert ledger_verify() == []


# --- the API ----------------------------------------------------------------------------------


def client(tenant) -> APIClient:
    api = APIClient()
    api.default_format = "json"
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(tenant, TenantToken.Kind.ADMIN)}")
    return api


def test_trial_fields_are_validated_on_create_and_patch_and_frozen_once_converted():
    setup = priced_setup(rate="1", started_at=OCT)
    api = client(setup.tenant)
    url = f"/api/v1/subscriptions/{setup.subscription.pk}"
    body = {"customer": setup.customer.pk, "offering": setup.rate_plan.offering_id, "rate_plan": setup.rate_plan.pk,
            "started_at": OCT.isoformat(), "confirm_backdated": True}
    created = api.post("/api/v1/subscriptions", {**body, "trial_ends_at": TRIAL_END.isoformat(),
                                                  "trial_metric": setup.metric.pk, "trial_units": "10000"})
    assert created.status_code == 201, created.content
    assert (created.json()["trial_units"], created.json()["trial_converted_at"]) == ("10000", None)
    other_metric = MetricFactory()  # another tenant's
    for bad, field in [
        ({"trial_ends_at": OCT.isoformat()}, "trial_ends_at"),
        ({"trial_metric": setup.metric.pk}, "trial_units"),
        ({"trial_units": "5"}, "trial_metric"),
        ({"trial_metric": setup.metric.pk, "trial_units": "NaN"}, "trial_units"),
        ({"trial_metric": setup.metric.pk, "trial_units": "-1"}, "trial_units"),
        ({"trial_metric": setup.metric.pk, "trial_units": 1.5}, "trial_units"),
        ({"trial_metric": setup.metric.pk, "trial_units": ["1"]}, "trial_units"),
        ({"trial_metric": other_metric.pk, "trial_units": "5"}, "trial_metric"),
        ({"trial_ends_at": "soon"}, "trial_ends_at"),
    ]:
        refused = api.patch(url, bad)
        assert refused.status_code == 400, (bad, refused.content)
        assert field in refused.json()["error"]["fields"], (bad, refused.json())
    assert api.patch(url, {"trial_ends_at": TRIAL_END.isoformat()}).status_code == 200
    ended = api.post(f"{url}/end-trial", {"reason": "signed the contract"})
    assert ended.status_code == 200, ended.content
    converted = api.patch(url, {"trial_ends_at": (TRIAL_END + timedelta(days=1)).isoformat()})
    assert converted.status_code == 400 and "trial_ends_at" in converted.json()["error"]["fields"]


def test_end_trial_converts_once_and_refuses_what_has_no_trial_and_hostile_bodies():
    setup = priced_setup(rate="1", started_at=OCT)
    future_end = timezone.now() + timedelta(days=10)
    with_trial(setup, trial_ends_at=future_end)
    api = client(setup.tenant)
    url = f"/api/v1/subscriptions/{setup.subscription.pk}/end-trial"
    for hostile in ([], "x", {"reason": ""}, {"reason": None}, {"reason": "a\x00b"}, {"reason": "r" * 301}, {"reason": {"a": 1}}, {}):
        refused = api.post(url, hostile)
        assert refused.status_code == 400, (hostile, refused.content)
    nested = api.generic("POST", url, "[" * 5000 + "]" * 5000, content_type="application/json")
    assert nested.status_code == 400
    first = api.post(url, {"reason": "converted on the phone"})
    assert first.status_code == 200 and first.json()["created"] is True
    trial = first.json()["trial"]
    assert trial["conversion"]["cause"] == "operator" and trial["conversion"]["reason"] == "converted on the phone"
    at = datetime.fromisoformat(trial["converted_at"])
    assert at < future_end and abs(at - timezone.now()) < timedelta(minutes=1)
    again = api.post(url, {"reason": "retry"})
    assert again.status_code == 200 and again.json()["created"] is False and again.json()["trial"]["converted_at"] == trial["converted_at"]
    assert TrialConversion.objects.count() == 1
    shown = api.get(f"/api/v1/subscriptions/{setup.subscription.pk}/trial")
    assert shown.status_code == 200 and shown.json()["converted_at"] == trial["converted_at"]
    plain = priced_setup(tenant=setup.tenant, rate="1", started_at=OCT)
    refused = api.post(f"/api/v1/subscriptions/{plain.subscription.pk}/end-trial", {"reason": "x"})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "not_convertible"
    stranger = priced_setup(rate="1", started_at=OCT)
    assert api.post(f"/api/v1/subscriptions/{stranger.subscription.pk}/end-trial", {"reason": "x"}).status_code == 404


# --- the admin --------------------------------------------------------------------------------


def test_the_admin_shows_the_trial_on_the_subscription_and_customer_pages_and_ends_it(client):
    from tests.test_admin import change_url, changelist_url, operator

    setup = priced_setup(rate="1", started_at=OCT)
    with_trial(setup, trial_metric=setup.metric, trial_units=Decimal(10))
    batch(setup, ("free", "4", OCT + timedelta(days=2)))
    client.force_login(operator(setup.tenant))
    page = client.get(change_url(setup.subscription)).content.decode()
    assert "trial usage (free)" in page.lower() and "Trial converted at" in page
    ended = client.post(changelist_url(Subscription), {"action": "end_trial_now", "_selected_action": [setup.subscription.pk]})
    assert ended.status_code == 302
    conversion = TrialConversion.objects.get(subscription=setup.subscription)
    assert conversion.cause == "operator" and conversion.reason.startswith("Ended in the admin")
    assert conversion.converted_at > OCT + timedelta(days=2)
    customer_page = client.get(change_url(setup.customer)).content.decode()
    assert "Ended by the operator" in customer_page
    listed = client.get(changelist_url(TrialConversion)).content.decode()
    assert "Ended by the operator" in listed


def test_the_dashboard_usage_page_shows_the_trial_progress(client, django_user_model):
    from catalog.models import CustomerUser

    setup = priced_setup(rate="1", started_at=OCT)
    with_trial(setup, trial_metric=setup.metric, trial_units=Decimal(10000), trial_ends_at=datetime(2027, 1, 15, tzinfo=UTC))
    batch(setup, ("free", "4000", OCT + timedelta(days=2)))
    user = django_user_model.objects.create_user("trial-user", password="pw")
    CustomerUser.objects.create(user=user, customer=setup.customer)
    client.force_login(user)
    html = client.get("/dashboard/").content.decode()
    assert f"Trial: 4,000 of 10,000 {setup.metric.code} free · ends 2027-01-15 00:00 UTC" in html
