"""manage.py verify_ledger on real PostgreSQL: a clean ledger passes (exit 0); each deliberate
corruption, made with a raw UPDATE behind the services' back, fails (exit 1) naming it."""

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command, execute_from_command_line
from django.db import connection
from django.utils import timezone

from billing.models import Invoice, InvoiceLine, RatedEvent, RunningTotal
from billing.settlement import settlement_run
from billing.verification import CHECKS, ledger_verify
from catalog.models import Subscription
from tests.billing.test_settlement import rate
from tests.factories import priced_setup
from wallets.models import Wallet
from wallets.services import wallet_create, wallet_top_up


@pytest.fixture
def ledger():
    """Two subscriptions settled: a postpaid one, and a prepaid one paying from its wallet."""
    postpaid = priced_setup(rate="0.333")
    rate(postpaid, "a", "10")
    rate(postpaid, "b", "5")
    prepaid = priced_setup(rate="1", billing_mode=Subscription.BillingMode.PREPAID)
    wallet = wallet_create(customer=prepaid.customer, currency="USD")
    wallet_top_up(tenant_id=wallet.tenant_id, wallet_id=wallet.pk, amount=Decimal(50), idempotency_key="t")
    rate(prepaid, "c", "4")
    invoice = settlement_run(subscription_id=postpaid.subscription.pk, at=timezone.now()).invoice
    settlement_run(subscription_id=prepaid.subscription.pk, at=timezone.now())
    rate(postpaid, "d", "1")  # rated after settlement: on no invoice yet, still in its running total
    return {"invoice": invoice, "wallet": wallet, "postpaid": postpaid}


def verify() -> str:
    out, err = StringIO(), StringIO()
    try:
        call_command("verify_ledger", stdout=out, stderr=err)
    except CommandError as error:
        return f"{err.getvalue()}FAILED: {error}"
    return out.getvalue()


def raw(sql: str, params: list) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


@pytest.mark.django_db
def test_a_clean_ledger_exits_zero(ledger, capsys):
    assert ledger_verify() == []
    execute_from_command_line(["manage.py", "verify_ledger"])  # no SystemExit: exit status 0
    assert "ledger OK" in capsys.readouterr().out


@pytest.mark.django_db
def test_a_line_amount_off_exits_one_naming_the_line(ledger, capsys):
    line = InvoiceLine.objects.get(invoice=ledger["invoice"], kind="usage")
    raw(f"UPDATE {InvoiceLine._meta.db_table} SET amount = amount + 0.01 WHERE id = %s", [line.pk])
    with pytest.raises(SystemExit) as exited:
        execute_from_command_line(["manage.py", "verify_ledger"])
    assert exited.value.code == 1
    err = capsys.readouterr().err
    number = ledger["invoice"].number
    assert f"invoice {number} line {line.position}: amount 5.010000 != 4.995" in err  # 15 × 0.333 = 4.995 → 5.00
    assert f"invoice {number}: total 5.000000" in err  # and the total no longer sums its lines
    assert "ledger verification failed: 2 problem(s)" in err


@pytest.mark.django_db
def test_a_running_total_off_is_named(ledger):
    total = RunningTotal.objects.get(subscription=ledger["postpaid"].subscription)
    raw(f"UPDATE {RunningTotal._meta.db_table} SET amount = amount + 1, event_count = event_count - 1 WHERE id = %s", [total.pk])
    report = verify()
    assert f"running total (subscription {total.subscription_id}, metric {total.metric_id}" in report
    assert "amount 6.328" in report and "2 events, newest event" in report and "3 events, newest" in report
    assert report.endswith("FAILED: ledger verification failed: 1 problem(s), listed above")


@pytest.mark.django_db
def test_a_running_totals_newest_event_off_is_named(ledger):
    # Settlement reads a period's totals instead of its events when it can: their newest event
    # and snapshot must be the events' own.
    total = RunningTotal.objects.get(subscription=ledger["postpaid"].subscription)
    newest = RatedEvent.objects.filter(subscription=ledger["postpaid"].subscription).order_by("-id").first()
    assert (total.last_rated_id, total.pricing_snapshot_id) == (newest.pk, newest.pricing_snapshot_id)
    raw(f"UPDATE {RunningTotal._meta.db_table} SET last_rated_id = last_rated_id - 1 WHERE id = %s", [total.pk])
    report = verify()
    assert f"newest event {newest.pk - 1} (snapshot {newest.pricing_snapshot_id})" in report
    assert f"newest {newest.pk} (snapshot {newest.pricing_snapshot_id})" in report


@pytest.mark.django_db
def test_a_wallet_balance_off_is_named(ledger):
    raw(f"UPDATE {Wallet._meta.db_table} SET balance = balance + 5 WHERE id = %s", [ledger["wallet"].pk])
    report = verify()
    assert f"wallet {ledger['wallet'].pk}: balance 51" in report and "!= sum of its ledger 46" in report


@pytest.mark.django_db
def test_a_rated_amount_changed_under_a_line_is_named_twice(ledger):
    rated = RatedEvent.objects.filter(subscription=ledger["postpaid"].subscription).order_by("id").first()
    raw(f"UPDATE {RatedEvent._meta.db_table} SET amount = amount + 1 WHERE id = %s", [rated.pk])
    report = verify()
    assert f"invoice {ledger['invoice'].number} line 1: amount_unrounded 4.995" in report
    assert "its rated events sum to 5.995" in report
    assert "running total (subscription" in report


@pytest.mark.django_db
def test_a_settled_event_on_no_line_and_one_on_two_lines_are_named(ledger):
    line = InvoiceLine.objects.get(invoice=ledger["invoice"], kind="usage")
    first, second = RatedEvent.objects.filter(subscription=ledger["postpaid"].subscription).order_by("id")[:2]
    raw(f"UPDATE {InvoiceLine._meta.db_table} SET rated_from_id = %s WHERE id = %s", [first.pk, line.pk])
    report = verify()
    assert f"rated event {first.pk} (subscription {first.subscription_id}" in report and "on no usage line" in report
    raw(f"UPDATE {InvoiceLine._meta.db_table} SET rated_from_id = %s WHERE id = %s", [first.pk - 1, line.pk])
    copy = InvoiceLine.objects.get(pk=line.pk)
    copy.pk, copy.position = None, 99
    copy.save()
    assert f"rated event {second.pk} is billed by 2 usage lines" in verify()


def copy_line(line: InvoiceLine, **changes) -> InvoiceLine:
    copy = InvoiceLine.objects.get(pk=line.pk)
    copy.pk = None
    for name, value in changes.items():
        setattr(copy, name, value)
    copy.save()
    return copy


@pytest.mark.django_db
def test_consecutive_line_ranges_pass_and_overlapping_ones_name_each_shared_event(ledger):
    """The overlap check orders a key's live lines by range: ranges that only meet are fine; a line
    over both halves of a split shares each of their events."""
    line = InvoiceLine.objects.get(invoice=ledger["invoice"], kind="usage")
    a, b = RatedEvent.objects.filter(subscription=ledger["postpaid"].subscription).order_by("id")[:2]
    # Split at a into (from, a] and (a, b], each with its own figures: 10 × 0.333 and 5 × 0.333 (4.995 = 3.33 + 1.67).
    InvoiceLine.objects.filter(pk=line.pk).update(
        rated_to_id=a.pk, units=10, event_count=1, amount_unrounded=Decimal("3.33"), amount=Decimal("3.33")
    )
    copy_line(
        line, position=98, rated_from_id=a.pk, rated_to_id=b.pk, units=5, event_count=1,
        amount_unrounded=Decimal("1.665"), amount=Decimal("1.67"),
    )
    assert ledger_verify() == []

    copy_line(line, position=99, rated_to_id=b.pk, units=15, event_count=2, amount_unrounded=Decimal("4.995"))
    report = verify()
    number = ledger["invoice"].number
    assert f"rated event {a.pk} is billed by 2 usage lines: {number} line 1, {number} line 99" in report
    assert f"rated event {b.pk} is billed by 2 usage lines: {number} line 98, {number} line 99" in report


@pytest.mark.django_db
def test_a_settled_event_in_a_key_with_no_line_is_named(ledger):
    first = RatedEvent.objects.filter(subscription=ledger["postpaid"].subscription).order_by("id").first()
    raw(f"UPDATE {RatedEvent._meta.db_table} SET dimension_key = 'region=eu' WHERE id = %s", [first.pk])
    report = verify()
    assert f"rated event {first.pk} (subscription {first.subscription_id}" in report and "on no usage line" in report
    assert f"invoice {ledger['invoice'].number} line 1: amount_unrounded 4.995" in report  # its line lost it


@pytest.mark.django_db
def test_the_lines_of_a_voided_invoice_cover_nothing(ledger):
    raw(f"UPDATE {Invoice._meta.db_table} SET status = 'void' WHERE id = %s", [ledger["invoice"].pk])
    problems = ledger_verify()
    settled = RatedEvent.objects.filter(subscription=ledger["postpaid"].subscription).order_by("id")[:2]
    assert [p.split(" (")[0] for p in problems] == [f"rated event {rated.pk}" for rated in settled]
    assert all(p.endswith("but on no usage line") for p in problems)


@pytest.mark.django_db
def test_the_checks_time_themselves_and_leave_the_callers_planner_settings(ledger):
    def settings() -> tuple:
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('enable_nestloop'), current_setting('work_mem')")
            return cursor.fetchone()

    before = settings()
    timings: dict[str, float] = {}
    assert ledger_verify(timings=timings) == []
    assert settings() == before
    assert list(timings) == [name for name, _ in CHECKS] and all(seconds >= 0 for seconds in timings.values())


@pytest.mark.django_db
def test_a_rated_event_whose_raw_event_is_gone_is_named(ledger):
    """The rated → raw link has no database constraint (the hot path's cost): the check does
    its job."""
    rated = RatedEvent.objects.filter(subscription=ledger["postpaid"].subscription).order_by("id").first()
    raw(f"UPDATE {RatedEvent._meta.db_table} SET raw_event_id = raw_event_id + 1000000 WHERE id = %s", [rated.pk])
    report = verify()
    assert f"rated event {rated.pk}: raw_event_id point(s) to no row" in report
