"""Late usage and the commitments of two periods, on real PostgreSQL (issue 15): usage rated after
its period was settled lands on the next invoice as a late_usage line of its own period, and
never changes that invoice's own commitment true-up or spend cap. Its own period's terms decide
what it costs: an adjustment line of that period's commitment (or cap) on the same invoice nets
it so that, over all its invoices, the period is charged max(minimum, usage) (min(cap, …) when
capped). Settling again changes nothing; a void and reissue recomputes the same adjustment; the
ledger stays clean.

The periods are the calendar months before this one: "October" and "November" in the issue's
words, whatever month the suite runs in."""

from datetime import UTC, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from billing.invoicing import invoice_void_and_reissue
from billing.models import Discount, Invoice, TaxRate
from billing.verification import ledger_verify
from catalog.models import Subscription
from tests.billing.test_settlement import rate, settle
from tests.factories import priced_setup, tenant_token
from wallets.models import Wallet
from wallets.services import wallet_create, wallet_top_up, wallets_check

DAY = timedelta(days=1)


def months():
    """The starts of the month before last ("October"), last month ("November") and this one."""
    this = timezone.now().astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    november = (this - DAY).replace(day=1)
    october = (november - DAY).replace(day=1)
    return october, november, this


@pytest.fixture
def periods():
    october, november, this = months()
    setup = priced_setup(rate="1", started_at=october)
    setup.october, setup.november, setup.december = october, november, this
    return setup


def terms(setup, **values):
    Subscription.objects.filter(pk=setup.subscription.pk).update(**values)


def described(invoice):
    """(kind, amount, period the line belongs to, description) per line, in invoice order."""
    return [
        (line.kind, line.amount, line.period_start, line.description)
        for line in invoice.lines.order_by("position")
    ]


def lines_of(invoice):
    return [(kind, amount, period) for kind, amount, period, _ in described(invoice)]


def october_then_late(setup, *, october_usage, late="5", november_usage="6.50"):
    """October's usage, October settled; a late event for October, November's usage; November
    settled. Returns (October's invoice, November's result)."""
    rate(setup, "oct", october_usage, at=setup.october + 20 * DAY)
    october = settle(setup, at=setup.october + 20 * DAY)
    rate(setup, "late", late, at=setup.october + 25 * DAY)  # rated after October was settled
    rate(setup, "nov", november_usage, at=setup.november + 3 * DAY)
    return october.invoice, settle(setup, at=setup.november + 3 * DAY)


def charged_for(setup, period_start):
    """What every live invoice of the subscription charged for the period (discounts and taxes
    aside): its own invoice's lines and the lines of later invoices that carry its period."""
    total = Decimal(0)
    for invoice in Invoice.objects.filter(subscription=setup.subscription).exclude(status="void"):
        for line in invoice.lines.exclude(kind__in=("discount", "tax")):
            if (line.period_start or invoice.period_start) == period_start:
                total += line.amount
    return total


@pytest.mark.django_db
def test_the_issues_example_late_usage_leaves_novembers_true_up_at_93_50(periods):
    setup = periods
    terms(setup, min_commitment=Decimal(100))
    october, november = october_then_late(setup, october_usage="40")
    assert lines_of(october) == [("usage", Decimal("40.00"), setup.october), ("commitment", Decimal("60.00"), setup.october)]
    got = described(november.invoice)
    assert [(kind, amount, period) for kind, amount, period, _ in got] == [
        ("usage", Decimal("6.50"), setup.november),
        ("late_usage", Decimal("5.00"), setup.october),  # billed on November's invoice, as October's
        ("commitment", Decimal("93.50"), setup.november),  # November's true-up: as without the late event
        ("commitment", Decimal("-5.00"), setup.october),  # October was below its minimum: the 5 fills its shortfall
    ]
    adjustment = got[-1][3]
    assert adjustment.startswith(f"{setup.october:%B} commitment adjustment")
    assert "5.00 USD" in adjustment and "100.00 USD" in adjustment
    assert november.invoice.total == Decimal("100.00")
    assert charged_for(setup, setup.october) == Decimal(100)  # max(100, 45)
    assert charged_for(setup, setup.november) == Decimal(100)  # max(100, 6.50)
    assert ledger_verify() == []


@pytest.mark.django_db
def test_late_usage_of_a_period_above_its_minimum_is_billed_in_full(periods):
    setup = periods
    terms(setup, min_commitment=Decimal(100))
    october, november = october_then_late(setup, october_usage="120")
    assert lines_of(october) == [("usage", Decimal("120.00"), setup.october)]
    assert lines_of(november.invoice) == [
        ("usage", Decimal("6.50"), setup.november),
        ("late_usage", Decimal("5.00"), setup.october),
        ("commitment", Decimal("93.50"), setup.november),
    ]
    assert charged_for(setup, setup.october) == Decimal(125)
    assert ledger_verify() == []


@pytest.mark.django_db
def test_late_usage_that_takes_a_period_past_its_minimum_nets_only_the_shortfall(periods):
    setup = periods
    terms(setup, min_commitment=Decimal(100))
    october, november = october_then_late(setup, october_usage="97")
    assert lines_of(october)[-1] == ("commitment", Decimal("3.00"), setup.october)
    assert lines_of(november.invoice)[1:] == [
        ("late_usage", Decimal("5.00"), setup.october),
        ("commitment", Decimal("93.50"), setup.november),
        ("commitment", Decimal("-3.00"), setup.october),  # 3 of the 5 fill October's shortfall, 2 are billed
    ]
    assert charged_for(setup, setup.october) == Decimal(102)  # max(100, 102)


@pytest.mark.django_db
def test_late_usage_never_consumes_the_current_periods_cap_room(periods):
    """October's late usage is capped by October's cap (a cap adjustment line of October), and
    November's cap sees November's charges only: 109 under the cap of 110, no cap line."""
    setup = periods
    terms(setup, spend_cap=Decimal(110))
    october, november = october_then_late(setup, october_usage="108", november_usage="109")
    assert lines_of(october) == [("usage", Decimal("108.00"), setup.october)]
    got = described(november.invoice)
    assert [(kind, amount, period) for kind, amount, period, _ in got] == [
        ("usage", Decimal("109.00"), setup.november),
        ("late_usage", Decimal("5.00"), setup.october),
        ("cap", Decimal("-3.00"), setup.october),  # October is charged 110, its cap; November keeps its 1 of room
    ]
    assert got[-1][3].startswith(f"{setup.october:%B} spend cap adjustment")
    assert charged_for(setup, setup.october) == Decimal(110)
    assert charged_for(setup, setup.november) == Decimal(109)
    assert ledger_verify() == []


@pytest.mark.django_db
def test_late_usage_of_a_period_capped_already_is_capped_whole(periods):
    setup = periods
    terms(setup, spend_cap=Decimal(110))
    october, november = october_then_late(setup, october_usage="115")
    assert lines_of(october) == [("usage", Decimal("115.00"), setup.october), ("cap", Decimal("-5.00"), setup.october)]
    assert lines_of(november.invoice)[1:] == [("late_usage", Decimal("5.00"), setup.october), ("cap", Decimal("-5.00"), setup.october)]
    assert charged_for(setup, setup.october) == Decimal(110)


@pytest.mark.django_db
def test_an_alert_only_cap_bills_late_usage_in_full_and_says_so(periods):
    setup = periods
    terms(setup, spend_cap=Decimal(110), spend_cap_action="alert")
    _, november = october_then_late(setup, october_usage="108")
    assert [kind for kind, *_ in lines_of(november.invoice)] == ["usage", "late_usage"]
    [commit_log] = [stage for stage in november.run.stages if stage["stage"] == "commit"]
    [late] = commit_log["late_periods"]
    assert "exceed" in late["cap_alert"] and late["period_start"] == setup.october.isoformat()


@pytest.mark.django_db
def test_settling_again_and_void_and_reissue_recompute_the_same_adjustment(periods):
    setup = periods
    terms(setup, min_commitment=Decimal(100))
    _, november = october_then_late(setup, october_usage="40")
    again = settle(setup, at=setup.november + 3 * DAY)
    assert not again.created and again.invoice.pk == november.invoice.pk
    # More late usage for October, settled with December's invoice: October's remaining
    # shortfall (60 − 5 = 55) is all that can be netted; 15 of the 70 are billed.
    rate(setup, "late-2", "70", at=setup.october + 26 * DAY)
    december = settle(setup, at=setup.december)
    assert lines_of(december.invoice)[-1] == ("commitment", Decimal("-55.00"), setup.october)
    assert charged_for(setup, setup.october) == Decimal(115)  # max(100, 40 + 5 + 70)
    # Reissued, November recomputes over what it settled, before December's run: the same lines.
    replacement = invoice_void_and_reissue(invoice=november.invoice, reason="address corrected").replacement
    assert described(replacement) == described(november.invoice)
    assert charged_for(setup, setup.october) == Decimal(115)
    assert ledger_verify() == []


@pytest.mark.django_db
def test_discounts_apply_after_commitment_and_cap_adjustments(periods):
    """Commit before Discount (the product description's stage order): the discount is a share
    of what the Commit stage left — November's true-up and October's late usage net of its
    adjustment included."""
    setup = periods
    terms(setup, min_commitment=Decimal(100))
    Discount.objects.create(tenant=setup.tenant, subscription=setup.subscription, kind="percent", value=Decimal(10))
    _, november = october_then_late(setup, october_usage="40")
    # 6.50 + 5.00 + 93.50 − 5.00 = 100.00; 10% of it
    assert lines_of(november.invoice)[-1][:2] == ("discount", Decimal("-10.00"))
    assert november.invoice.total == Decimal("90.00")


@pytest.mark.django_db
def test_the_documented_worked_example(periods):
    """docs/SETTLEMENT.md's example, line for line: minimum 100, cap 150, 10% then 5 off, VAT 20%."""
    setup = periods
    terms(setup, min_commitment=Decimal(100), spend_cap=Decimal(150))
    Discount.objects.create(tenant=setup.tenant, subscription=setup.subscription, kind="percent", value=Decimal(10), position=1)
    Discount.objects.create(tenant=setup.tenant, subscription=setup.subscription, kind="fixed", value=Decimal(5), position=2)
    TaxRate.objects.create(tenant=setup.tenant, customer=setup.customer, name="VAT", percent=Decimal(20))
    october, november = october_then_late(setup, october_usage="60", november_usage="180")
    assert [(kind, amount) for kind, amount, _ in lines_of(october)] == [
        ("usage", Decimal("60.00")), ("commitment", Decimal("40.00")), ("discount", Decimal("-10.00")),
        ("discount", Decimal("-5.00")), ("tax", Decimal("17.00")),
    ]
    assert october.total == Decimal("102.00")
    assert lines_of(november.invoice) == [
        ("usage", Decimal("180.00"), setup.november), ("late_usage", Decimal("5.00"), setup.october),
        ("commitment", Decimal("-5.00"), setup.october), ("cap", Decimal("-30.00"), setup.november),
        ("discount", Decimal("-15.00"), None), ("discount", Decimal("-5.00"), None), ("tax", Decimal("26.00"), None),
    ]
    assert november.invoice.total == Decimal("156.00")
    assert ledger_verify() == []


@pytest.mark.django_db
def test_verify_ledger_names_a_period_whose_adjustments_took_back_more_than_its_true_up(periods):
    setup = periods
    terms(setup, min_commitment=Decimal(100))
    _, november = october_then_late(setup, october_usage="40")
    adjustment = november.invoice.lines.get(kind="commitment", period_start=setup.october)
    type(adjustment).objects.filter(pk=adjustment.pk).update(amount=Decimal(-65), amount_unrounded=Decimal(-65))
    problems = ledger_verify()
    assert any(
        f"period {setup.october:%Y-%m-%d}: its commitment lines sum to -5" in problem for problem in problems
    ), problems


@pytest.mark.django_db
def test_the_invoice_api_shows_the_adjustment_with_the_period_it_belongs_to(periods, api_client):
    setup = periods
    terms(setup, min_commitment=Decimal(100))
    _, november = october_then_late(setup, october_usage="40")
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(setup.tenant)}")
    body = api_client.get(f"/api/v1/invoices/{november.invoice.pk}").json()
    shown = [(line["kind"], line["amount"], parse_datetime(line["period_start"])) for line in body["lines"]]
    assert shown == [
        ("usage", "6.50", setup.november), ("late_usage", "5.00", setup.october),
        ("commitment", "93.50", setup.november), ("commitment", "-5.00", setup.october),
    ]
    assert body["lines"][-1]["description"].startswith(f"{setup.october:%B} commitment adjustment (period from ")


@pytest.mark.django_db
def test_a_prepaid_wallet_pays_each_period_its_minimum_once(periods):
    """Prepaid: the late 5 is debited in real time like any usage; November's settlement then
    takes only what its invoice nets to beyond the real-time debits — 100 per period in all."""
    setup = periods
    Subscription.objects.filter(pk=setup.subscription.pk).update(
        min_commitment=Decimal(100), billing_mode=Subscription.BillingMode.PREPAID
    )
    wallet = wallet_create(customer=setup.customer, currency="USD")
    wallet_top_up(tenant_id=wallet.tenant_id, wallet_id=wallet.pk, amount=Decimal(500), idempotency_key="t")
    october, november = october_then_late(setup, october_usage="40")
    assert (october.total, october.amount_due) == (Decimal(100), Decimal(0))
    assert (november.invoice.total, november.invoice.wallet_applied, november.invoice.amount_due) == (
        Decimal(100), Decimal(100), Decimal(0)
    )
    assert Wallet.objects.get(pk=wallet.pk).balance == Decimal(300)
    assert wallets_check() == [] and ledger_verify() == []


@pytest.mark.django_db
def test_a_late_period_keeps_the_commitment_it_was_settled_with(periods):
    """October settled under a minimum of 100; the minimum is 200 by the time its late usage is
    settled: October's adjustment is still against 100 (its final run logged it), November's
    true-up against 200."""
    setup = periods
    terms(setup, min_commitment=Decimal(100))
    rate(setup, "oct", "40", at=setup.october + 20 * DAY)
    settle(setup, at=setup.october + 20 * DAY)
    terms(setup, min_commitment=Decimal(200))
    rate(setup, "late", "5", at=setup.october + 25 * DAY)
    november = settle(setup, at=setup.november + 3 * DAY)
    assert lines_of(november.invoice) == [
        ("late_usage", Decimal("5.00"), setup.october),
        ("commitment", Decimal("200.00"), setup.november),
        ("commitment", Decimal("-5.00"), setup.october),
    ]
    assert "100.00 USD minimum commitment" in november.invoice.lines.get(period_start=setup.october, kind="commitment").description
