"""The admin's replay runs: Start a replay (validated by the service, scoped to the operator's
tenant), the run's page with its report, and the list another tenant's operator cannot see."""

from __future__ import annotations

from django.urls import reverse

from billing.models import ReplayRun
from tests.factories import priced_setup
from tests.test_admin import changelist_url, operator


def test_an_operator_starts_a_dry_run_and_reads_its_report(client, db, django_capture_on_commit_callbacks):
    setup = priced_setup()
    client.force_login(operator(setup.tenant))
    start = reverse("admin:replay_start")
    assert client.get(start).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(start, {"source": "unmatched", "dry_run": "on", "_confirm": "1"})
    run = ReplayRun.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("admin:billing_replayrun_change", args=[run.pk])
    assert (run.tenant_id, run.status, run.dry_run, run.requested_by) == (setup.tenant.id, "succeeded", True, "admin:operator")
    page = client.get(response["Location"]).content.decode()
    assert "would_rate" in page and "still_unmatched" in page
    assert "would rate 0, still unmatched 0" in client.get(changelist_url(ReplayRun)).content.decode()

    client.force_login(operator(priced_setup().tenant, username="other"))
    assert f"/{run.pk}/change/" not in client.get(changelist_url(ReplayRun)).content.decode()


def test_bad_parameters_are_shown_on_the_form_and_start_nothing(client, db, kafka):
    setup = priced_setup()
    client.force_login(operator(setup.tenant))
    response = client.post(
        reverse("admin:replay_start"), {"source": "offsets", "partition": "0", "from_offset": "5", "to_offset": "1", "_confirm": "1"}
    )
    assert response.status_code == 200
    assert "to_offset must be at or after from_offset" in response.content.decode()
    assert not ReplayRun.objects.exists()
