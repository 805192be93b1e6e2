"""Replaying selected unmatched usage from the admin: what now matches is rated (and published
to usage.rated.v1 on the real broker), the rest stays unmatched, other rows are untouched."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import orjson
import pytest
from django.utils import timezone

from billing.models import RatedEvent, RunningTotal
from catalog.models import key_hash
from metering.models import RawEvent, UnmatchedUsage
from tests.conftest import read_topic
from tests.factories import priced_setup
from tests.test_admin import changelist_url, operator

pytestmark = [pytest.mark.django_db, pytest.mark.kafka]


def _unmatched(setup, event_id: str, *, api_key: str, quantity: str = "4") -> UnmatchedUsage:
    now = timezone.now()
    raw = RawEvent.objects.create(
        tenant=setup.tenant, event_id=event_id, api_key_prefix=api_key[:16], subject="key:" + key_hash(api_key),
        metric=setup.metric.code, quantity=Decimal(quantity), timestamp=now - timedelta(minutes=5), received_at=now,
    )
    reason = UnmatchedUsage.Reason.UNKNOWN_API_KEY
    return UnmatchedUsage.objects.create(tenant=setup.tenant, raw_event=raw, reason=reason)


def test_replay_selected_rates_what_now_matches_and_publishes_it(client, kafka):
    setup = priced_setup(rate="0.5")
    now_known = _unmatched(setup, "late-key", api_key=setup.api_key)
    still_unknown = _unmatched(setup, "typo-key", api_key="sk_live_typo_that_matches_nothing")
    not_selected = _unmatched(setup, "other", api_key=setup.api_key, quantity="1")
    client.force_login(operator(setup.tenant))

    response = client.post(
        changelist_url(UnmatchedUsage),
        {"action": "replay_selected", "_selected_action": [now_known.pk, still_unknown.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert "Replayed 2 unresolved row(s): 1 rated, 1 still unmatched." in [str(m) for m in response.context["messages"]]
    rated = RatedEvent.objects.get(raw_event=now_known.raw_event)
    assert (rated.quantity, rated.amount, rated.subscription_id) == (Decimal("4"), Decimal("2"), setup.subscription.pk)
    total = RunningTotal.objects.get(subscription=setup.subscription)
    assert (total.units, total.amount, total.event_count) == (Decimal("4"), Decimal("2"), 1)
    for row, resolved in ((now_known, True), (still_unknown, False), (not_selected, False)):
        row.refresh_from_db()
        assert (row.resolved_at is not None) is resolved, row.raw_event.event_id
    assert not RatedEvent.objects.filter(raw_event=not_selected.raw_event).exists()

    [record] = read_topic(kafka["bootstrap"], kafka["rated"], expect=1)
    published = orjson.loads(record.value())
    assert (published["event_id"], published["rated_event_id"]) == ("late-key", rated.pk)
    assert Decimal(published["amount"]) == Decimal("2")


def test_replay_needs_the_change_permission(client, db, django_user_model):
    from django.contrib.auth.models import Permission

    setup = priced_setup()
    row = _unmatched(setup, "viewer", api_key=setup.api_key)
    viewer = operator(setup.tenant, username="viewer")
    viewer.user_permissions.set(Permission.objects.filter(codename="view_unmatchedusage"))
    client.force_login(viewer)
    page = client.get(changelist_url(UnmatchedUsage))
    assert page.status_code == 200 and "replay_selected" not in page.content.decode()
    client.post(changelist_url(UnmatchedUsage), {"action": "replay_selected", "_selected_action": [row.pk]})
    row.refresh_from_db()
    assert row.resolved_at is None
