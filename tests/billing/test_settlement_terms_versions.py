"""Settlement under versioned terms and per-metric minimums, on real PostgreSQL: the version in
effect at a period's start governs it (a version added mid-period applies from the next one), a
reissue keeps the version its period was settled with unless a retroactive correction governs it
now, a metric's minimum is trued up before the minimum commitment (prorated like it), and late
usage of a settled period adjusts that period's metric minimum, never the current period's.

"October" and "November" are the two calendar months before this one, as in
test_settlement_late_commitment."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.invoicing import invoice_void_and_reissue
from billing.verification import ledger_verify
from catalog.models import Subscription
from catalog.terms import TermsRetroactive, terms_version_add
from tests.billing.test_settlement import rate, settle
from tests.billing.test_settlement_late_commitment import DAY, charged_for, described, lines_of, months
from tests.factories import priced_setup

pytestmark = pytest.mark.django_db


@pytest.fixture
def periods():
    october, november, this = months()
    setup = priced_setup(rate="1", started_at=october, metric_code="calls")
    setup.october, setup.november, setup.december = october, november, this
    return setup


def add_terms(setup, *, now, effective_from=None, retroactive=False, **values):
    return terms_version_add(subscription=setup.subscription, values=values, effective_from=effective_from or now,
                             now=now, retroactive=retroactive)


def test_a_version_added_mid_period_applies_from_the_next_period_and_the_earlier_keeps_its_terms(periods):
    setup = periods
    first = add_terms(setup, now=setup.october, min_commitment=Decimal(100), net_terms_days=15)
    assert first.first_period[0] == setup.october
    # Mid-October the contract changes "from now": October was begun under 100, so November is the first under 200.
    second = add_terms(setup, now=setup.october + 14 * DAY, min_commitment=Decimal(200), net_terms_days=45)
    assert second.first_period[0] == setup.november
    rate(setup, "oct", "60", at=setup.october + 20 * DAY)
    rate(setup, "nov", "60", at=setup.november + 3 * DAY)
    october = settle(setup, at=setup.october + 20 * DAY)
    november = settle(setup, at=setup.november + 3 * DAY)
    assert lines_of(october.invoice) == [("usage", Decimal("60.00"), setup.october), ("commitment", Decimal("40.00"), setup.october)]
    assert lines_of(november.invoice) == [("usage", Decimal("60.00"), setup.november), ("commitment", Decimal("140.00"), setup.november)]
    # the net terms of each period's own version
    assert (october.invoice.due_at - october.invoice.finalized_at, november.invoice.due_at - november.invoice.finalized_at) == (
        15 * DAY, 45 * DAY)
    logged = {run.period_start: next(s for s in run.stages if s["stage"] == "commit") for run in (october.run, november.run)}
    assert (logged[setup.october]["terms_version"], logged[setup.november]["terms_version"]) == (first.version.pk, second.version.pk)


def test_a_reissue_keeps_its_version_unless_a_retroactive_correction_governs_it(periods):
    setup = periods
    add_terms(setup, now=setup.october, min_commitment=Decimal(100))
    rate(setup, "oct", "60", at=setup.october + 20 * DAY)
    october = settle(setup, at=setup.october + 20 * DAY)
    add_terms(setup, now=setup.december, min_commitment=Decimal(300))  # from this period on
    kept = invoice_void_and_reissue(invoice=october.invoice, reason="address corrected").replacement
    assert lines_of(kept) == lines_of(october.invoice)  # still 100: the version October was settled with
    # A correction of October's terms, effective from its start: refused without retroactive, then applied by a reissue.
    with pytest.raises(TermsRetroactive):
        add_terms(setup, now=setup.december, effective_from=setup.october, min_commitment=Decimal(150))
    add_terms(setup, now=setup.december, effective_from=setup.october, retroactive=True, min_commitment=Decimal(150))
    corrected = invoice_void_and_reissue(invoice=kept, reason="minimum was 150").replacement
    assert lines_of(corrected) == [("usage", Decimal("60.00"), setup.october), ("commitment", Decimal("90.00"), setup.october)]
    assert Subscription.objects.get(pk=setup.subscription.pk).min_commitment == Decimal(300)  # the copy: in effect now
    assert ledger_verify() == []


def test_a_metric_minimum_is_trued_up_before_the_commitment_and_prorated_like_it(periods):
    setup = periods
    started = setup.october + 10 * DAY  # a start within the period: 10 of its days are not covered
    Subscription.objects.filter(pk=setup.subscription.pk).update(billing_anchor=setup.october, started_at=started)
    setup.subscription.refresh_from_db()
    add_terms(setup, now=started, min_commitment=Decimal(100), metric_minimums={"calls": "62"})
    rate(setup, "oct", "10", at=started + DAY)
    october = settle(setup, at=started + DAY)
    share = Decimal((setup.november - started).total_seconds()) / Decimal((setup.november - setup.october).total_seconds())
    metric_minimum, commitment = (Decimal(62) * share).quantize(Decimal("0.01")), (Decimal(100) * share).quantize(Decimal("0.01"))
    got = described(october.invoice)
    assert [(kind, amount) for kind, amount, _, _ in got] == [
        ("usage", Decimal("10.00")),
        ("commitment", metric_minimum - 10),  # the metric's own true-up first …
        ("commitment", commitment - metric_minimum),  # … then the commitment over the charges with it
    ]
    assert got[1][3].startswith(f"Minimum for {setup.metric.name} 62, prorated")
    assert october.invoice.lines.get(description__startswith="Minimum for").metric_id == setup.metric.pk
    assert october.invoice.subtotal == commitment


def test_late_usage_adjusts_its_own_periods_metric_minimum_never_the_current_one(periods):
    setup = periods
    add_terms(setup, now=setup.october, min_commitment=Decimal(50), metric_minimums={"calls": "30"})
    rate(setup, "oct", "10", at=setup.october + 20 * DAY)
    october = settle(setup, at=setup.october + 20 * DAY)
    assert lines_of(october.invoice) == [
        ("usage", Decimal("10.00"), setup.october), ("commitment", Decimal("20.00"), setup.october),
        ("commitment", Decimal("20.00"), setup.october),
    ]
    rate(setup, "late", "5", at=setup.october + 25 * DAY)  # rated after October was settled
    rate(setup, "nov", "6", at=setup.november + 3 * DAY)
    november = settle(setup, at=setup.november + 3 * DAY)
    got = described(november.invoice)
    assert [(kind, amount, period) for kind, amount, period, _ in got] == [
        ("usage", Decimal("6.00"), setup.november),
        ("late_usage", Decimal("5.00"), setup.october),
        ("commitment", Decimal("24.00"), setup.november),  # November's own: as without the late events
        ("commitment", Decimal("20.00"), setup.november),
        ("commitment", Decimal("-5.00"), setup.october),  # October's minimum for calls: the 5 fills its shortfall
    ]
    assert got[-1][3].startswith(f"{setup.october:%B} minimum for {setup.metric.name} adjustment")
    assert charged_for(setup, setup.october) == Decimal(50) and charged_for(setup, setup.november) == Decimal(50)
    # Reissued, November recomputes the same adjustment.
    replacement = invoice_void_and_reissue(invoice=november.invoice, reason="address corrected").replacement
    assert described(replacement) == got
    assert ledger_verify() == []
