"""The admin's re-rating jobs: "Re-rate a month" (validated by the service, scoped to the
operator's tenant), the job's page with its table, the CSV of its changed events (from the report
for a dry run, from the ledger once applied), and the list another tenant's operator cannot see."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from billing.models import RatingCorrection
from tests.factories import priced_setup
from tests.test_admin import changelist_url, operator

from .test_rerate import GRADUATED, GRADUATED_FIXED, _fix_price, _month_start, _rate, _setup

pytestmark = pytest.mark.django_db(transaction=True)


def _csv(response) -> list[dict]:
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content if response.streaming else [response.content]).decode())))


def test_an_operator_rerates_a_month_reads_the_table_and_downloads_the_csv(client, django_capture_on_commit_callbacks):
    setup, now = _setup(GRADUATED)
    period = _month_start(now, 1)
    records = _rate(setup, period + timedelta(days=1), ["6", "6", "3"])
    _fix_price(setup, GRADUATED_FIXED, at=setup.subscription.started_at + timedelta(seconds=1))
    client.force_login(operator(setup.tenant))
    start = reverse("admin:rerating_start")
    assert client.get(start).status_code == 200
    form = {"subscription": setup.subscription.pk, "period": f"{period:%Y-%m}", "reason": "tier 2 fix", "_confirm": "1"}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(start, {**form, "dry_run": "on"})
    job = RatingCorrection.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("admin:billing_ratingcorrection_change", args=[job.pk])
    assert (job.tenant_id, job.status, job.dry_run, job.requested_by) == (setup.tenant.id, "succeeded", True, "admin:operator")
    page = client.get(response["Location"]).content.decode()
    assert "3 events in scope, 2 rated differently" in page and "difference -2.50" in page
    dry_rows = _csv(client.get(reverse("admin:rerating_events_csv", args=[job.pk])))
    assert [(r["raw_event_id"], Decimal(r["difference"])) for r in dry_rows] == [
        (str(records[1].raw_event_id), Decimal("-1")), (str(records[2].raw_event_id), Decimal("-1.5"))
    ]

    with django_capture_on_commit_callbacks(execute=True):
        client.post(start, form)
    applied = RatingCorrection.objects.exclude(pk=job.pk).get()
    rows = _csv(client.get(reverse("admin:rerating_events_csv", args=[applied.pk])))
    assert [(r["event_id"], Decimal(r["old_amount"]), Decimal(r["new_amount"])) for r in rows] == [
        ("e1", Decimal(8), Decimal(7)), ("e2", Decimal(6), Decimal("4.5"))
    ]
    assert "2 of 3 events, -2.5" in client.get(changelist_url(RatingCorrection)).content.decode()

    client.force_login(operator(priced_setup().tenant, username="other"))
    assert f"/{applied.pk}/change/" not in client.get(changelist_url(RatingCorrection)).content.decode()
    assert client.get(reverse("admin:rerating_events_csv", args=[applied.pk])).status_code == 404


def test_bad_parameters_are_shown_on_the_form_and_start_nothing(client):
    setup, _ = _setup(GRADUATED)
    client.force_login(operator(setup.tenant))
    response = client.post(
        reverse("admin:rerating_start"), {"subscription": setup.subscription.pk, "period": "2026-13", "reason": "x", "_confirm": "1"}
    )
    assert response.status_code == 200 and "period must be a month" in response.content.decode()
    other = priced_setup()
    response = client.post(
        reverse("admin:rerating_start"), {"subscription": other.subscription.pk, "period": "2026-01", "reason": "x", "_confirm": "1"}
    )
    assert response.status_code == 200 and "of this tenant" in response.content.decode()
    assert not RatingCorrection.objects.exists()
