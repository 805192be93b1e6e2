"""Re-rating (manage.py rerate, POST /api/v1/rerating-jobs) and single-event reversal
(POST /api/v1/events/{id}/reverse) against the real PostgreSQL: events on both sides of tier
boundaries, graduated and volume prices, open and settled periods, postpaid, prepaid and hybrid
wallets; every run leaves verify_ledger clean and a second run writes nothing."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from rest_framework.test import APIClient

from billing.models import Invoice, InvoiceLine, RatedEvent, RatingCorrection, RunningTotal, UsageRollup
from billing.rerating.services import event_reverse, rerating_job_create, rerating_job_execute
from billing.settlement import settlement_run
from billing.verification import ledger_verify
from catalog import services
from catalog.models import Subscription
from tests.factories import funded_wallet, priced_setup, rated_event, tenant_token

pytestmark = pytest.mark.django_db(transaction=True)

GRADUATED = {"model": "graduated", "tiers": [{"up_to": "10", "unit_amount": "1"}, {"up_to": None, "unit_amount": "2"}]}
GRADUATED_FIXED = {"model": "graduated", "tiers": [{"up_to": "10", "unit_amount": "1"}, {"up_to": None, "unit_amount": "1.5"}]}
VOLUME = {"model": "volume", "tiers": [{"up_to": "10", "unit_amount": "1"}, {"up_to": None, "unit_amount": "2"}]}
VOLUME_FIXED = {"model": "volume", "tiers": [{"up_to": "10", "unit_amount": "1"}, {"up_to": None, "unit_amount": "1.5"}]}


def _month_start(moment: datetime, back: int) -> datetime:
    year, month = moment.year, moment.month - back
    while month < 1:
        year, month = year - 1, month + 12
    return datetime(year, month, 1, tzinfo=dt_timezone.utc)


def _setup(config, *, billing_mode=Subscription.BillingMode.POSTPAID):
    now = timezone.now()
    start = _month_start(now, 3)
    return priced_setup(config=config, billing_mode=billing_mode, started_at=start), now


def _fix_price(setup, config, *, at: datetime):
    """A new version of the plan in force from `at` (before the events): the price correction."""
    version = services.rate_plan_version_create(rate_plan=setup.rate_plan, effective_from=at)
    services.metric_config_set(version=version, metric=setup.metric, config=config)
    return services.rate_plan_version_publish(version=version)


def _rate(setup, at: datetime, quantities, prefix="e"):
    return [rated_event(setup, f"{prefix}{i}", q, at=at + timedelta(minutes=i)) for i, q in enumerate(quantities)]


def _total(setup) -> RunningTotal:
    return RunningTotal.objects.get(subscription=setup.subscription)


def _rerate(setup, period: str, *, dry_run=False, **scope):
    scope = scope or {"subscription_id": setup.subscription.pk}
    job = rerating_job_create(tenant_id=setup.tenant.pk, period=period, reason="tier 2 was mispriced", dry_run=dry_run, **scope)
    return rerating_job_execute(job_id=job.pk)


@pytest.mark.parametrize(
    "old, new, before, after",
    [(GRADUATED, GRADUATED_FIXED, "20", "17.5"), (VOLUME, VOLUME_FIXED, "30", "22.5")],
    ids=["graduated", "volume"],
)
def test_an_open_period_rerated_across_a_tier_boundary_ends_where_the_new_price_would(old, new, before, after):
    setup, now = _setup(old)
    period = _month_start(now, 0)
    at = period + timedelta(hours=1) if now - period > timedelta(hours=2) else period
    _rate(setup, at, ["6", "6", "3"])  # 6 in tier 1, 4 + 2 across the boundary, 3 past it
    assert _total(setup).amount == Decimal(before)
    _fix_price(setup, new, at=setup.subscription.started_at + timedelta(seconds=1))
    rows = RatedEvent.objects.count()

    dry = _rerate(setup, f"{period:%Y-%m}", dry_run=True)
    assert dry.status == "succeeded" and RatedEvent.objects.count() == rows
    assert Decimal(dry.report["total"]["difference"]) == Decimal(after) - Decimal(before)
    assert dry.report["events"] == 3 and dry.report["changed"] >= 1
    assert [c["customer_id"] for c in dry.report["customers"]] == [setup.customer.pk]
    assert all(line["settled"] is False for line in dry.report["lines"])
    assert _total(setup).amount == Decimal(before)

    job = _rerate(setup, f"{period:%Y-%m}")
    changed = job.report["changed"]
    assert job.report["written"]["reversals"] == changed and job.report["written"]["ratings"] == changed
    assert RatedEvent.objects.count() == rows + 2 * changed
    total = _total(setup)
    assert total.amount == Decimal(after) and total.units == Decimal(15) and total.event_count == 3
    reversals = RatedEvent.objects.filter(correction=job, reverses__isnull=False)
    assert reversals.count() == changed
    for reversal in reversals:  # linked to the raw event, the job and the rating it cancels
        cancelled = RatedEvent.objects.get(pk=reversal.reverses_id)
        assert reversal.raw_event_id == cancelled.raw_event_id and reversal.amount == -cancelled.amount
        assert RatedEvent.objects.filter(correction=job, raw_event_id=cancelled.raw_event_id, reverses__isnull=True).exists()
    assert sum(r.amount for r in UsageRollup.objects.filter(subscription=setup.subscription)) == Decimal(after)
    assert sum(r.event_count for r in UsageRollup.objects.filter(subscription=setup.subscription)) == 3
    assert ledger_verify() == []

    again = _rerate(setup, f"{period:%Y-%m}")
    assert again.report["changed"] == 0 and "written" not in again.report
    assert RatedEvent.objects.count() == rows + 2 * changed


def test_a_settled_period_gets_its_difference_as_an_adjustment_line_on_the_next_invoice():
    setup, now = _setup(GRADUATED)
    settled_month = _month_start(now, 2)
    _rate(setup, settled_month + timedelta(days=2), ["6", "6", "3"])
    first = settlement_run(subscription_id=setup.subscription.pk, at=settled_month + timedelta(days=3), watermark_lag_s=0).invoice
    usage = first.lines.get(kind=InvoiceLine.Kind.USAGE)
    assert usage.amount == Decimal("20.00")
    _fix_price(setup, GRADUATED_FIXED, at=setup.subscription.started_at + timedelta(seconds=1))

    dry = _rerate(setup, f"{settled_month:%Y-%m}", dry_run=True)
    assert [(line["invoice"], line["line"], line["settled"]) for line in dry.report["lines"]] == [
        (first.number, usage.position, True)
    ]
    assert Decimal(dry.report["lines"][0]["difference"]) == Decimal("-2.5")

    _rerate(setup, f"{settled_month:%Y-%m}")
    assert ledger_verify() == []
    first.refresh_from_db()
    assert first.total == Decimal("20.00")  # an issued invoice is never edited
    following = _month_start(now, 1)
    second = settlement_run(subscription_id=setup.subscription.pk, at=following + timedelta(days=1), watermark_lag_s=0).invoice
    late = second.lines.get(kind=InvoiceLine.Kind.LATE_USAGE)
    assert late.amount == Decimal("-2.50") and late.period_start == settled_month
    assert late.event_count == 0  # two reversals and two new ratings: the same events
    assert ledger_verify() == []
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(setup.tenant)}")
    traced = client.get(f"/api/v1/invoices/{second.pk}/lines/{late.pk}/events").json()
    assert Decimal(traced["sum_amount"]) == Decimal("-2.5") and len(traced["results"]) == 4
    reversals = [row for row in traced["results"] if row["reverses"] is not None]
    assert len(reversals) == 2 and {row["correction"] for row in traced["results"]} == {
        RatingCorrection.objects.get(tenant=setup.tenant, dry_run=False).pk}
    assert _rerate(setup, f"{settled_month:%Y-%m}").report["changed"] == 0


GRADUATED_RAISED = {"model": "graduated", "tiers": [{"up_to": "10", "unit_amount": "1"}, {"up_to": None, "unit_amount": "3"}]}


@pytest.mark.parametrize(
    "mode, new, balance",
    [
        (Subscription.BillingMode.PREPAID, GRADUATED_FIXED, "82.5"),  # 20 → 17.5: 2.50 given back
        (Subscription.BillingMode.PREPAID, GRADUATED_RAISED, "75"),  # 20 → 25: 5 more taken
        (Subscription.BillingMode.HYBRID, GRADUATED_RAISED, "75"),  # the wallet pays first: a rise too
    ],
    ids=["prepaid-cheaper", "prepaid-dearer", "hybrid-dearer"],
)
def test_a_prepaid_or_hybrid_wallet_moves_by_exactly_the_difference(mode, new, balance):
    setup, now = _setup(GRADUATED, billing_mode=mode)
    wallet = funded_wallet(setup.customer, "100")
    period = _month_start(now, 0)
    _rate(setup, period if now - period < timedelta(hours=2) else period + timedelta(hours=1), ["6", "6", "3"])
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("80")
    _fix_price(setup, new, at=setup.subscription.started_at + timedelta(seconds=1))
    job = _rerate(setup, f"{period:%Y-%m}")
    wallet.refresh_from_db()
    assert wallet.balance == Decimal(balance)
    assert Decimal(job.report["written"]["wallet_charged"]) == Decimal("80") - Decimal(balance)
    assert ledger_verify() == []
    _rerate(setup, f"{period:%Y-%m}")
    wallet.refresh_from_db()
    assert wallet.balance == Decimal(balance)


def test_a_customer_or_plan_scope_covers_each_of_its_subscriptions():
    setup, now = _setup(GRADUATED)
    period = _month_start(now, 1)
    _rate(setup, period + timedelta(days=1), ["12"])
    _fix_price(setup, GRADUATED_FIXED, at=setup.subscription.started_at + timedelta(seconds=1))
    by_customer = _rerate(setup, f"{period:%Y-%m}", dry_run=True, customer_id=setup.customer.pk)
    by_plan = _rerate(setup, f"{period:%Y-%m}", dry_run=True, rate_plan_id=setup.rate_plan.pk)
    assert by_customer.report["total"] == by_plan.report["total"]
    assert Decimal(by_plan.report["total"]["difference"]) == Decimal("-1")
    other = priced_setup(config=GRADUATED)
    with pytest.raises(Exception) as refused:  # another tenant's subscription: unknown here
        rerating_job_create(tenant_id=setup.tenant.pk, period=f"{period:%Y-%m}", reason="x", subscription_id=other.subscription.pk)
    assert refused.value.status_code == 404


def test_reversing_an_event_in_the_middle_of_a_tier_reprices_the_events_after_it():
    setup, now = _setup(GRADUATED)
    period = _month_start(now, 1)
    records = _rate(setup, period + timedelta(days=1), ["6", "6", "3"])
    assert [r.amount for r in records] == [Decimal(6), Decimal(8), Decimal(6)]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(setup.tenant)}")
    url = f"/api/v1/events/{records[0].raw_event_id}/reverse"

    response = client.post(url, {"reason": "sent twice by the gateway"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["kind"] == "reversal" and body["status"] == "succeeded" and body["report"]["removed"] == 1
    assert Decimal(body["report"]["total"]["difference"]) == Decimal(-11)  # 20 → 6 + 3
    total = _total(setup)
    assert (total.units, total.amount, total.event_count) == (Decimal(9), Decimal(9), 2)
    assert ledger_verify() == []
    gone = client.get(f"/api/v1/events/{records[0].raw_event_id}").json()
    assert (gone["rated_event_id"], gone["reversed"]) == (None, True)
    moved = client.get(f"/api/v1/events/{records[1].raw_event_id}").json()  # re-rated: its newest rating
    assert moved["reversed"] is False and moved["rated_event_id"] == RatedEvent.objects.filter(
        raw_event_id=records[1].raw_event_id, reverses__isnull=True).latest("id").pk != records[1].rated_event_id
    invoice = settlement_run(subscription_id=setup.subscription.pk, at=period + timedelta(days=2), watermark_lag_s=0).invoice
    line = invoice.lines.get(kind=InvoiceLine.Kind.USAGE)
    assert (line.amount, line.units, line.event_count) == (Decimal("9.00"), Decimal(9), 2)
    assert ledger_verify() == []

    again = client.post(url, {"reason": "again"}, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "event_reversed"
    assert client.post(url, {}, format="json").json()["error"]["fields"].keys() == {"reason"}
    assert client.post("/api/v1/events/999999999/reverse", {"reason": "x"}, format="json").status_code == 404
    other = priced_setup(config=GRADUATED)
    theirs = rated_event(other, "t1", "1")
    assert client.post(f"/api/v1/events/{theirs.raw_event_id}/reverse", {"reason": "x"}, format="json").status_code == 404


def test_the_api_starts_a_job_shows_its_report_and_refuses_bad_input():
    setup, now = _setup(GRADUATED)
    period = _month_start(now, 1)
    _rate(setup, period + timedelta(days=1), ["6", "6"])
    _fix_price(setup, GRADUATED_FIXED, at=setup.subscription.started_at + timedelta(seconds=1))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(setup.tenant)}")
    body = {"subscription": setup.subscription.pk, "period": f"{period:%Y-%m}", "reason": "fix", "dry_run": True}
    created = client.post("/api/v1/rerating-jobs", body, format="json")
    assert created.status_code == 202, created.content
    job = client.get(f"/api/v1/rerating-jobs/{created.json()['id']}").json()
    assert job["status"] == "succeeded" and Decimal(job["report"]["total"]["difference"]) == Decimal("-1")

    for bad, field, code in [
        ({**body, "period": "2026-13"}, "period", "invalid_period"),
        ({**body, "period": "\x00"}, "period", None),
        ({**body, "customer": setup.customer.pk}, "scope", "invalid_scope"),
        ({k: v for k, v in body.items() if k != "subscription"}, "scope", "invalid_scope"),
        ({**body, "reason": ""}, "reason", None),
        ({**body, "settled": "burn"}, "settled", None),
        ({**body, "subscription": "x"}, "subscription", None),
    ]:
        response = client.post("/api/v1/rerating-jobs", bad, format="json")
        assert response.status_code == 400, (bad, response.content)
        error = response.json()["error"]
        assert field in error["fields"], (bad, error)
        assert code is None or error["code"] == code, (bad, error)
    assert client.post("/api/v1/rerating-jobs", b"\xff\xfe", content_type="application/json").status_code == 400
    other = priced_setup(config=GRADUATED)
    theirs = rerating_job_create(tenant_id=other.tenant.pk, period=f"{period:%Y-%m}", reason="x", subscription_id=other.subscription.pk)
    assert client.get(f"/api/v1/rerating-jobs/{theirs.pk}").status_code == 404


def test_the_command_prints_a_table_or_json_and_a_second_run_writes_nothing():
    setup, now = _setup(GRADUATED)
    period = _month_start(now, 1)
    _rate(setup, period + timedelta(days=1), ["6", "6", "3"])
    _fix_price(setup, GRADUATED_FIXED, at=setup.subscription.started_at + timedelta(seconds=1))
    out = StringIO()
    call_command("rerate", "--subscription", str(setup.subscription.pk), "--period", f"{period:%Y-%m}", "--dry-run", stdout=out)
    text = out.getvalue()
    assert "dry run, nothing written" in text and "difference -2.50" in text and setup.customer.name[:32] in text
    out = StringIO()
    call_command("rerate", "--customer", str(setup.customer.pk), "--period", f"{period:%Y-%m}", "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert report["written"]["reversals"] == 2 and report["status"] == "succeeded"
    out = StringIO()
    call_command("rerate", "--plan", str(setup.rate_plan.pk), "--period", f"{period:%Y-%m}", "--json", stdout=out)
    assert json.loads(out.getvalue())["changed"] == 0
    with pytest.raises(CommandError, match="invalid_period"):
        call_command("rerate", "--subscription", str(setup.subscription.pk), "--period", "May")
    assert RatingCorrection.objects.filter(tenant=setup.tenant).count() == 3


def test_void_and_reissue_bills_the_corrections_on_a_replacement_invoice():
    setup, now = _setup(GRADUATED)
    settled_month = _month_start(now, 2)
    _rate(setup, settled_month + timedelta(days=2), ["6", "6", "3"])
    first = settlement_run(subscription_id=setup.subscription.pk, at=settled_month + timedelta(days=3), watermark_lag_s=0).invoice
    _fix_price(setup, GRADUATED_FIXED, at=setup.subscription.started_at + timedelta(seconds=1))
    job = rerating_job_create(
        tenant_id=setup.tenant.pk, period=f"{settled_month:%Y-%m}", reason="tier 2 fix", subscription_id=setup.subscription.pk,
        settled="reissue",
    )
    job = rerating_job_execute(job_id=job.pk)
    [outcome] = job.report["reissues"]
    assert outcome["outcome"] == "reissued" and outcome["invoice"] == first.number
    first.refresh_from_db()
    replacement = Invoice.objects.get(number=outcome["replacement"])
    assert first.status == "void" and replacement.replaces_id == first.pk
    line = replacement.lines.get(kind=InvoiceLine.Kind.USAGE)
    assert (line.amount, line.event_count) == (Decimal("17.50"), 3)
    assert ledger_verify() == []
    following = _month_start(now, 1)
    second = settlement_run(subscription_id=setup.subscription.pk, at=following + timedelta(days=1), watermark_lag_s=0).invoice
    assert not second.lines.filter(kind=InvoiceLine.Kind.LATE_USAGE).exists()  # billed once, on the replacement
    assert ledger_verify() == []


def test_a_reissue_after_a_later_run_falls_back_to_an_adjustment_line():
    setup, now = _setup(GRADUATED)
    settled_month, following = _month_start(now, 2), _month_start(now, 1)
    _rate(setup, settled_month + timedelta(days=2), ["6", "6", "3"])
    first = settlement_run(subscription_id=setup.subscription.pk, at=settled_month + timedelta(days=3), watermark_lag_s=0).invoice
    settlement_run(subscription_id=setup.subscription.pk, at=following + timedelta(days=1), watermark_lag_s=0)
    _fix_price(setup, GRADUATED_FIXED, at=setup.subscription.started_at + timedelta(seconds=1))
    job = rerating_job_create(
        tenant_id=setup.tenant.pk, period=f"{settled_month:%Y-%m}", reason="tier 2 fix", subscription_id=setup.subscription.pk,
        settled="reissue",
    )
    job = rerating_job_execute(job_id=job.pk)
    assert [(o["invoice"], o["outcome"], o["code"]) for o in job.report["reissues"]] == [(first.number, "adjustment", "later_runs")]
    first.refresh_from_db()
    assert first.status != "void"
    assert ledger_verify() == []
    preview = settlement_run(subscription_id=setup.subscription.pk, at=now, watermark_lag_s=0, dry_run=True).context
    late = [line for line in preview.lines if line.kind == "late_usage"]
    assert [(line.period_start, line.amount_unrounded) for line in late] == [(settled_month, Decimal("-2.5"))]


def test_events_an_override_now_prices_move_to_its_own_running_total():
    setup, now = _setup({"model": "per_unit", "rate": "1"})
    period = _month_start(now, 1)
    at = period + timedelta(days=1)
    for i, region in enumerate(["eu", "us", "eu"]):
        rated_event(setup, f"r{i}", "1", at=at + timedelta(minutes=i), dimensions={"region": region})
    _fix_price(setup, {"model": "per_unit", "rate": "1", "overrides": [
        {"match": {"region": "eu"}, "price": {"model": "per_unit", "rate": "2"}}]},
        at=setup.subscription.started_at + timedelta(seconds=1))
    job = _rerate(setup, f"{period:%Y-%m}")
    assert job.report["changed"] == 2 and Decimal(job.report["total"]["difference"]) == Decimal(2)
    totals = {t.dimension_key: (t.units, t.amount, t.event_count) for t in RunningTotal.objects.filter(subscription=setup.subscription)}
    eu = next(key for key in totals if key)
    assert totals == {"": (Decimal(1), Decimal(1), 1), eu: (Decimal(2), Decimal(4), 2)}
    assert ledger_verify() == []
    assert _rerate(setup, f"{period:%Y-%m}").report["changed"] == 0
    invoice = settlement_run(subscription_id=setup.subscription.pk, at=period + timedelta(days=2), watermark_lag_s=0).invoice
    assert sorted((line.dimension_key, line.amount) for line in invoice.lines.filter(kind=InvoiceLine.Kind.USAGE)) == [
        ("", Decimal("1.00")), (eu, Decimal("4.00"))]
    assert ledger_verify() == []


def _plan_of_three(config, *, back=1, settle=False):
    """Three subscriptions on one plan, 3 events each (6, 6, 3 units: across the tier boundary)
    `back` months ago (settled, if `settle`), then the price fixed."""
    from tests.billing.test_backtest import _customer

    setup, now = _setup(config)
    period = _month_start(now, back)
    setups = [setup, _customer(setup, 1), _customer(setup, 2)]
    for n, each in enumerate(setups):
        _rate(each, period + timedelta(days=1), ["6", "6", "3"], prefix=f"s{n}-")
        if settle:
            each.invoice = settlement_run(subscription_id=each.subscription.pk, at=period + timedelta(days=2), watermark_lag_s=0).invoice
    _fix_price(setup, GRADUATED_FIXED, at=setup.subscription.started_at + timedelta(seconds=1))
    return setups, f"{period:%Y-%m}"


def _comparable(report: dict) -> dict:
    return {k: v for k, v in report.items() if k not in ("written", "event_changes")} | {
        "event_changes": sorted(report["event_changes"], key=lambda e: e["raw_event_id"])}


def test_a_scope_rerated_in_chunks_reports_and_writes_what_one_transaction_would(monkeypatch):
    import billing.rerating.services as rerating

    setups, month = _plan_of_three(GRADUATED)
    whole = _rerate(setups[0], month, dry_run=True, rate_plan_id=setups[0].rate_plan.pk)
    monkeypatch.setattr(rerating, "CHUNK_EVENTS", 4)  # a subscription (3 events) per transaction
    assert rerating._chunks([s.subscription.pk for s in setups], *rerating.month_range(month)) == [
        [s.subscription.pk] for s in setups]
    chunked = _rerate(setups[0], month, dry_run=True, rate_plan_id=setups[0].rate_plan.pk)
    assert _comparable(chunked.report) == _comparable(whole.report)
    assert (chunked.report["changed"], Decimal(chunked.report["total"]["difference"])) == (6, Decimal("-7.5"))

    applied = _rerate(setups[0], month, rate_plan_id=setups[0].rate_plan.pk)
    assert applied.report["written"] == {"job": applied.pk, "reversals": 6, "ratings": 6, "totals_moved": 3,
                                         "wallet_charges": 0, "wallet_charged": "0"}
    for each in setups:
        total = RunningTotal.objects.get(subscription=each.subscription)
        assert (total.units, total.amount, total.event_count) == (Decimal(15), Decimal("17.5"), 3)
    assert ledger_verify() == []
    assert _rerate(setups[0], month, rate_plan_id=setups[0].rate_plan.pk).report["changed"] == 0


def test_a_job_stopped_after_some_chunks_keeps_them_and_a_second_run_finishes(monkeypatch):
    import billing.rerating.services as rerating

    setups, month = _plan_of_three(GRADUATED)
    monkeypatch.setattr(rerating, "CHUNK_EVENTS", 4)
    real_write, calls = rerating._write, []

    def write_then_fail(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("the database went away")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(rerating, "_write", write_then_fail)
    job = rerating_job_create(tenant_id=setups[0].tenant.pk, period=month, reason="fix", rate_plan_id=setups[0].rate_plan.pk)
    with pytest.raises(rerating.ReratingInterrupted, match=r"the events of 1 of 3 subscriptions were re-rated \(2 corrected\) before OSError"):
        rerating_job_execute(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == RatingCorrection.Status.FAILED and "Run the job again" in job.error
    amounts = [RunningTotal.objects.get(subscription=each.subscription).amount for each in setups]
    assert amounts == [Decimal("17.5"), Decimal(20), Decimal(20)]  # the first chunk stands, whole; the others untouched
    assert ledger_verify() == []

    monkeypatch.setattr(rerating, "_write", real_write)
    again = _rerate(setups[0], month, rate_plan_id=setups[0].rate_plan.pk)
    assert again.report["changed"] == 4 and again.report["written"]["reversals"] == 4
    assert [RunningTotal.objects.get(subscription=each.subscription).amount for each in setups] == [Decimal("17.5")] * 3
    assert ledger_verify() == []


def test_a_reissue_job_stopped_after_some_chunks_has_reissued_their_invoices(monkeypatch):
    import billing.rerating.services as rerating

    setups, month = _plan_of_three(GRADUATED, back=2, settle=True)
    monkeypatch.setattr(rerating, "CHUNK_EVENTS", 4)
    real_write, calls = rerating._write, []

    def write_then_fail(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("the database went away")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(rerating, "_write", write_then_fail)
    job = rerating_job_create(tenant_id=setups[0].tenant.pk, period=month, reason="fix", rate_plan_id=setups[0].rate_plan.pk,
                              settled="reissue")
    with pytest.raises(rerating.ReratingInterrupted):
        rerating_job_execute(job_id=job.pk)
    statuses = [Invoice.objects.get(pk=each.invoice.pk).status for each in setups]
    assert statuses[0] == "void" and statuses[1] != "void" and statuses[2] != "void"  # the written chunk's, reissued
    assert Invoice.objects.get(replaces_id=setups[0].invoice.pk).lines.get(kind=InvoiceLine.Kind.USAGE).amount == Decimal("17.50")

    monkeypatch.setattr(rerating, "_write", real_write)
    again = rerating_job_execute(job_id=rerating_job_create(
        tenant_id=setups[0].tenant.pk, period=month, reason="fix", rate_plan_id=setups[0].rate_plan.pk, settled="reissue").pk)
    assert [o["outcome"] for o in again.report["reissues"]] == ["reissued", "reissued"]
    assert [Invoice.objects.get(pk=each.invoice.pk).status for each in setups] == ["void"] * 3
    assert ledger_verify() == []
