"""manage.py settle on real PostgreSQL: the invoice as text and JSON, the dry-run preview that
writes nothing, --period, --due (only periods that are over), and running it twice."""

import json
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone as django_timezone

from billing.models import Invoice, SettlementRun
from tests.billing.test_settlement import rate
from tests.factories import priced_setup

DAY = timedelta(days=1)


def settle(*args: str) -> str:
    out = StringIO()
    call_command("settle", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_prints_the_invoice_lines_totals_and_stages():
    setup = priced_setup(rate="1")
    rate(setup, "a", "2")
    rate(setup, "b", "1.5")
    out = settle("--subscription", str(setup.subscription.pk))
    invoice = Invoice.objects.get(subscription=setup.subscription)
    assert f"Invoice {invoice.number} (finalized): settled now" in out
    usage_row = next(row for row in out.splitlines() if row.startswith("1  usage"))
    assert usage_row.split()[-3:] == ["3.5", "2", "3.50"]  # units, events, amount (right-aligned columns)
    assert "     amount due  3.50" in out
    assert "  aggregate: watermark=" in out and "  settle: invoice=" in out


@pytest.mark.django_db
def test_json_is_the_invoice_with_decimals_as_strings():
    setup = priced_setup(rate="0.333")
    rate(setup, "a", "10")
    document = json.loads(settle("--subscription", str(setup.subscription.pk), "--json"))
    invoice = Invoice.objects.get(subscription=setup.subscription)
    assert (document["number"], document["status"], document["settlement"]) == (invoice.number, "finalized", "created")
    assert (document["total"], document["amount_due"], document["wallet_applied"]) == ("3.33", "3.33", "0.00")
    [line] = document["lines"]
    assert (line["kind"], line["amount"], line["amount_unrounded"], line["units"], line["metric"]) == (
        "usage", "3.33", "3.33", "10", setup.metric.code,
    )
    assert [stage["stage"] for stage in document["stages"]][-1] == "settle"


@pytest.mark.django_db
def test_dry_run_previews_and_writes_nothing():
    setup = priced_setup(rate="1")
    rate(setup, "a", "4")
    out = settle("--subscription", str(setup.subscription.pk), "--dry-run")
    assert "Invoice preview (dry run: nothing written)" in out and "4.00" in out
    document = json.loads(settle("--subscription", str(setup.subscription.pk), "--dry-run", "--json"))
    assert (document["settlement"], document["number"], document["total"]) == ("preview", None, "4.00")
    assert not Invoice.objects.exists() and not SettlementRun.objects.exists()


@pytest.mark.django_db
def test_twice_prints_the_same_invoice_and_says_so():
    setup = priced_setup(rate="1")
    rate(setup, "a", "2")
    first = json.loads(settle("--subscription", str(setup.subscription.pk), "--json"))
    again = settle("--subscription", str(setup.subscription.pk))
    assert f"Invoice {first['number']} (finalized): this period was settled already" in again
    assert Invoice.objects.filter(subscription=setup.subscription).count() == 1


@pytest.mark.django_db
def test_period_is_the_period_containing_the_first_instant_of_that_month():
    now = django_timezone.now()
    this_month = datetime(now.year, now.month, 1, tzinfo=UTC)
    last_month = (this_month - DAY).replace(day=1)
    setup = priced_setup(rate="1", started_at=(last_month - DAY).replace(day=1))  # calendar monthly
    rate(setup, "old", "5", at=last_month + 2 * DAY)
    rate(setup, "new", "7")
    document = json.loads(settle("--subscription", str(setup.subscription.pk), "--period", f"{last_month:%Y-%m}", "--json"))
    assert document["period_start"] == last_month.isoformat() and document["total"] == "5.00"


@pytest.mark.django_db
def test_due_settles_only_periods_that_are_over_oldest_first():
    now = django_timezone.now()
    old = priced_setup(rate="1", started_at=now - 70 * DAY)  # two periods over, the third current
    rate(old, "p1", "1", at=now - 65 * DAY)
    rate(old, "p2", "2", at=now - 30 * DAY)
    rate(old, "p3", "4")
    young = priced_setup(rate="1", started_at=now - 10 * DAY)  # its first period still open
    rate(young, "y", "8")
    preview = settle("--due", "--dry-run")
    assert preview.count("Invoice preview") == 2 and not Invoice.objects.exists()
    documents = json.loads(settle("--due", "--json"))
    assert [(d["subscription"], d["total"]) for d in documents] == [(old.subscription.pk, "1.00"), (old.subscription.pk, "2.00")]
    invoices = list(Invoice.objects.order_by("number"))
    assert [i.period_start for i in invoices] == sorted(i.period_start for i in invoices)  # oldest first
    assert settle("--due").strip() == "nothing is due: every period that is over has its invoice"
    assert Invoice.objects.count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--subscription", "987654"], "subscription 987654 does not exist"),
        (["--customer", "987654"], "customer 987654 does not exist"),
        (["--subscription", "1", "--period", "2026-13"], "--period: expected YYYY-MM"),
        (["--subscription", "1", "--at", "2026-10-01T00:00"], "has no UTC offset"),
        (["--due", "--period", "2026-10"], "--due settles every period that is over; it takes no --period or --at"),
    ],
)
def test_errors_are_one_clear_line(args, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(")):
        settle(*args)


@pytest.mark.django_db
def test_a_future_period_is_refused():
    setup = priced_setup(rate="1")
    later = (django_timezone.now() + 40 * DAY).isoformat()
    with pytest.raises(CommandError, match=f"subscription {setup.subscription.pk} cannot be settled: .* in the future"):
        settle("--subscription", str(setup.subscription.pk), "--at", later)
