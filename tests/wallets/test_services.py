"""Wallet services on the real PostgreSQL: holds that never double-spend under concurrency,
transitions that exactly one racer wins, idempotent retries, and the rated stream debiting
prepaid and hybrid wallets in the rating transaction. After every test, every wallet agrees
with its ledger (wallets_check)."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from billing.models import RatedEvent
from catalog.models import Subscription
from metering.enrichment import EnrichmentCache
from billing.usage import IncomingEvent, usage_batch_record
from metering.validation import validate_event
from tests import factories
from tests.factories import CustomerFactory, priced_setup
from wallets.models import Hold, LowBalanceAlert, Wallet, WalletEntry
from wallets.services import InsufficientFunds, WalletError, wallet_create, wallet_top_up, wallets_check
from wallets.holds import hold_commit, hold_place, hold_release, holds_expire


@pytest.fixture(autouse=True)
def ledger_invariant(request):
    """After every test that used the database (by marker or fixture), every wallet agrees with
    its ledger and its holds."""
    yield
    if request.node.get_closest_marker("django_db") or {"db", "transactional_db"} & set(request.fixturenames):
        assert wallets_check() == []


def funded_wallet(amount="100", *, thresholds=(), customer=None) -> Wallet:
    return factories.funded_wallet(customer, amount, thresholds=thresholds)


def place(wallet, amount, key, *, ttl=60, reference="session-1", now=None):
    return hold_place(
        tenant_id=wallet.tenant_id, wallet_id=wallet.pk, amount=Decimal(amount), ttl_seconds=ttl,
        reference=reference, idempotency_key=key, now=now,
    )


def run_concurrently(functions):
    """Start every function on its own thread at once; return their results or exceptions."""
    results: list = [None] * len(functions)
    barrier = threading.Barrier(len(functions))

    def run(index, function):
        try:
            barrier.wait(10)
            results[index] = function()
        except BaseException as error:  # noqa: BLE001 - collected for the assertions
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, f)) for i, f in enumerate(functions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


# --- holds --------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_holds_against_a_wallet_covering_exactly_k_of_them():
    wallet = funded_wallet("70")  # 50 holds of 10: exactly 7 fit
    results = run_concurrently([lambda n=n: place(wallet, "10", f"h{n}") for n in range(50)])
    placed = [r for r in results if isinstance(r, tuple)]
    refused = [r for r in results if isinstance(r, InsufficientFunds)]
    assert (len(placed), len(refused)) == (7, 43), [r for r in results if not isinstance(r, (tuple, InsufficientFunds))]
    assert all(r.extra["available"] < Decimal(10) for r in refused)
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.held, wallet.available) == (Decimal(70), Decimal(70), Decimal(0))
    assert Hold.objects.filter(wallet=wallet, status="active").count() == 7


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("rounds", range(3))
def test_commit_racing_release_racing_expiry_exactly_one_wins(rounds):
    wallet = funded_wallet("100")
    hold, _ = place(wallet, "40", "race", ttl=60)
    after_expiry = timezone.now() + timedelta(seconds=120)  # only the sweep sees it due
    results = run_concurrently(
        [
            lambda: hold_commit(tenant_id=wallet.tenant_id, hold_id=hold.pk, amount=Decimal(30)),
            lambda: hold_release(tenant_id=wallet.tenant_id, hold_id=hold.pk),
            lambda: holds_expire(now=after_expiry),
        ]
    )
    hold.refresh_from_db()
    resolutions = WalletEntry.objects.filter(hold=hold).exclude(kind="hold")
    assert resolutions.count() == 1  # one transition, whoever won
    winner = {"committed": 0, "released": 1, "expired": 2}[hold.status]
    for index, result in enumerate(results):
        if index == winner:
            assert result == 1 if index == 2 else result[1] is True
        elif index == 2:
            assert result == 0
        else:
            assert isinstance(result, WalletError) and result.code == f"hold_{hold.status}"
    wallet.refresh_from_db()
    assert wallet.held == 0
    assert wallet.balance == (Decimal(70) if hold.status == "committed" else Decimal(100))


@pytest.mark.django_db
def test_commit_charges_the_actual_amount_and_releases_the_rest():
    wallet = funded_wallet("100")
    hold, _ = place(wallet, "40", "h")
    committed, changed = hold_commit(tenant_id=wallet.tenant_id, hold_id=hold.pk, amount=Decimal("12.5"))
    assert changed and committed.status == "committed" and committed.committed_amount == Decimal("12.5")
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.held) == (Decimal("87.5"), Decimal(0))
    entry = WalletEntry.objects.get(hold=hold, kind="hold_commit")
    assert (entry.amount, entry.held_change, entry.balance_after) == (Decimal("-12.5"), Decimal(-40), Decimal("87.5"))


def _commit(wallet, hold, amount, **kwargs):
    return hold_commit(tenant_id=wallet.tenant_id, hold_id=hold.pk, amount=Decimal(amount), **kwargs)


def _ledger(wallet) -> list[tuple]:
    return list(WalletEntry.objects.filter(wallet=wallet).order_by("id").values_list("kind", "amount", "held_change"))


@pytest.mark.django_db
def test_commit_above_the_hold_is_refused_without_allow_over_capture_even_when_funds_allow():
    wallet = funded_wallet("100")
    hold, _ = place(wallet, "40", "h")
    before = _ledger(wallet)
    with pytest.raises(WalletError) as refused:
        _commit(wallet, hold, "40.01")
    error = refused.value
    assert (error.code, error.status, error.field) == ("exceeds_hold", 409, "amount")
    assert error.extra == {
        "amount": Decimal(40), "drawn": Decimal(0), "remaining": Decimal(40), "excess": Decimal("0.01"),
        "currency": "USD",
    }
    assert f"Hold {hold.pk} reserved 40 USD" in error.message and "allow_over_capture" in error.message
    assert _ledger(wallet) == before and Hold.objects.get(pk=hold.pk).status == "active"  # nothing charged
    with pytest.raises(WalletError) as explicit_no:
        _commit(wallet, hold, "41", allow_over_capture=False)
    assert explicit_no.value.code == "exceeds_hold"
    committed, changed = _commit(wallet, hold, "40")  # exactly what it reserved: fine
    assert changed and committed.committed_amount == Decimal(40)
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.held) == (Decimal(60), Decimal(0))


@pytest.mark.django_db
def test_allow_over_capture_charges_the_excess_only_if_the_available_balance_covers_it():
    wallet = funded_wallet("100")
    hold, _ = place(wallet, "40", "h")
    place(wallet, "50", "other", reference="session-2")  # available now 10
    with pytest.raises(InsufficientFunds) as refused:
        _commit(wallet, hold, "50.01", allow_over_capture=True)
    assert refused.value.extra["available"] == Decimal(10) and refused.value.extra["needed"] == Decimal("10.01")
    assert Hold.objects.get(pk=hold.pk).status == "active"  # nothing happened
    _commit(wallet, hold, "50", allow_over_capture=True)
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.held, wallet.available) == (Decimal(50), Decimal(50), Decimal(0))
    entry = WalletEntry.objects.get(hold=hold, kind="hold_commit")
    assert (entry.amount, entry.held_change) == (Decimal(-50), Decimal(-40))


@pytest.mark.django_db
def test_an_over_capture_commit_retried_returns_the_first_result_and_charges_nothing():
    wallet = funded_wallet("100")
    hold, _ = place(wallet, "10", "h")
    first, changed = _commit(wallet, hold, "12.5", allow_over_capture=True)
    assert changed and first.committed_amount == Decimal("12.5")
    ledger = _ledger(wallet)
    again, changed_again = _commit(wallet, hold, "12.5", allow_over_capture=True)
    assert not changed_again and again.pk == hold.pk and again.committed_amount == Decimal("12.5")
    # A retry that lost the flag asks for nothing new either: it gets the committed hold back.
    without_flag, changed_again = _commit(wallet, hold, "12.5")
    assert not changed_again and without_flag.committed_amount == Decimal("12.5")
    with pytest.raises(WalletError) as other_amount:
        _commit(wallet, hold, "13", allow_over_capture=True)
    assert other_amount.value.code == "hold_committed"
    assert _ledger(wallet) == ledger
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.held) == (Decimal("87.5"), Decimal(0))


@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_of_an_over_capture_commit_charge_once():
    wallet = funded_wallet("100")
    hold, _ = place(wallet, "10", "h")
    results = run_concurrently([lambda: _commit(wallet, hold, "15", allow_over_capture=True) for _ in range(6)])
    assert sorted(r[1] for r in results) == [False] * 5 + [True], results
    assert WalletEntry.objects.filter(hold=hold, kind="hold_commit").count() == 1
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.held) == (Decimal(85), Decimal(0))


@pytest.mark.django_db
def test_exceeds_hold_counts_what_the_session_already_drew():
    setup = priced_setup(rate="1", billing_mode=Subscription.BillingMode.PREPAID)
    wallet = funded_wallet("100", customer=setup.customer)
    hold, _ = place(wallet, "10", "sess-hold", reference="sess-7")
    rate(setup, "a", "4", session_id="sess-7")  # 4 drawn from the hold: 6 left
    with pytest.raises(WalletError) as refused:
        _commit(wallet, hold, "6.5")
    assert refused.value.code == "exceeds_hold"
    assert {k: refused.value.extra[k] for k in ("amount", "drawn", "remaining", "excess")} == {
        "amount": Decimal(10), "drawn": Decimal(4), "remaining": Decimal(6), "excess": Decimal("0.5"),
    }
    assert "reserved 10 USD, 4 already drawn by its session, 6 left" in refused.value.message
    _commit(wallet, hold, "6")
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.held) == (Decimal(90), Decimal(0))


@pytest.mark.django_db
def test_allow_over_capture_must_be_a_real_boolean():
    wallet = funded_wallet("100")
    hold, _ = place(wallet, "10", "h")
    for flag in ("true", 1, None):
        with pytest.raises(WalletError) as refused:
            _commit(wallet, hold, "20", allow_over_capture=flag)
        assert (refused.value.code, refused.value.field, refused.value.status) == (
            "invalid_allow_over_capture", "allow_over_capture", 400,
        )
    assert Hold.objects.get(pk=hold.pk).status == "active"


# --- money moved in and out: whole minor units ------------------------------------------------


def _wallet_in(currency: str) -> Wallet:
    return wallet_create(customer=CustomerFactory(), currency=currency)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("currency", "too_fine", "unit", "whole"),
    [("USD", "1.005", "0.01", "1.50"), ("JPY", "1.5", "1", "1500"), ("KWD", "1.0005", "0.001", "1.005"),
     ("CLF", "0.00001", "0.0001", "0.0001"), ("EUR", "0.001", "0.01", "100")],
)
def test_top_ups_finer_than_the_minor_unit_are_refused(currency, too_fine, unit, whole):
    wallet = _wallet_in(currency)
    with pytest.raises(WalletError) as refused:
        wallet_top_up(tenant_id=wallet.tenant_id, wallet_id=wallet.pk, amount=Decimal(too_fine), idempotency_key="k")
    error = refused.value
    assert (error.code, error.field, error.status) == ("invalid_amount", "amount", 400)
    assert error.extra == {"minor_unit": Decimal(unit), "currency": currency}
    assert f"finer than the currency's minor unit ({unit} {currency})" in error.message
    assert not WalletEntry.objects.filter(wallet=wallet).exists()
    # The refusal did not use up the key: the corrected top-up goes through under it.
    entry, created = wallet_top_up(
        tenant_id=wallet.tenant_id, wallet_id=wallet.pk, amount=Decimal(whole), idempotency_key="k"
    )
    assert created and entry.amount == Decimal(whole)
    # Holds and commits are charges for usage, not payments: they keep the exact, finer amount.
    hold, _ = place(wallet, too_fine, "usage")
    committed, _ = _commit(wallet, hold, too_fine)
    assert committed.committed_amount == Decimal(too_fine)
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.held) == (Decimal(whole) - Decimal(too_fine), Decimal(0))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("currency", "amount"), [("USD", "-0.005"), ("USD", "10.001"), ("JPY", "-0.5"), ("BHD", "0.0001")]
)
def test_adjustments_finer_than_the_minor_unit_are_refused(currency, amount):
    from wallets.services import wallet_adjust

    wallet = _wallet_in(currency)
    with pytest.raises(WalletError) as refused:
        wallet_adjust(
            tenant_id=wallet.tenant_id, wallet_id=wallet.pk, amount=Decimal(amount), idempotency_key="a",
            reason="fix",
        )
    error = refused.value
    assert (error.code, error.field, error.extra["currency"]) == ("invalid_amount", "amount", currency)
    assert not WalletEntry.objects.filter(wallet=wallet).exists()


@pytest.mark.django_db
def test_a_legacy_wallet_with_an_unknown_currency_counts_in_hundredths():
    customer = CustomerFactory()
    # A wallet from before currencies were checked (wallet_create refuses ZZZ now).
    legacy = Wallet.objects.create(tenant_id=customer.tenant_id, customer=customer, currency="ZZZ")
    wallet_top_up(tenant_id=legacy.tenant_id, wallet_id=legacy.pk, amount=Decimal("1.01"), idempotency_key="ok")
    with pytest.raises(WalletError) as refused:
        wallet_top_up(tenant_id=legacy.tenant_id, wallet_id=legacy.pk, amount=Decimal("1.001"), idempotency_key="no")
    assert refused.value.extra["minor_unit"] == Decimal("0.01")


@pytest.mark.django_db
@pytest.mark.parametrize("currency", ["ABC", "XXX", "XTS", "XAU", "XDR", "HRK", "BGN", "ZZZ"])
def test_wallet_currencies_are_active_iso_4217_codes(currency):
    with pytest.raises(WalletError) as refused:
        wallet_create(customer=CustomerFactory(), currency=currency)
    assert (refused.value.code, refused.value.field, refused.value.status) == ("invalid_currency", "currency", 400)
    assert not Wallet.objects.exists()


@pytest.mark.django_db
def test_wallet_currency_codes_are_read_case_insensitively():
    customer = CustomerFactory()
    made = [wallet_create(customer=customer, currency=code).currency for code in ("jpy", " clf ", "KWD")]
    assert made == ["JPY", "CLF", "KWD"]


@pytest.mark.django_db
def test_every_write_is_idempotent():
    wallet = funded_wallet("0")
    first, created = wallet_top_up(tenant_id=wallet.tenant_id, wallet_id=wallet.pk, amount=Decimal(20), idempotency_key="t1")
    again, created_again = wallet_top_up(tenant_id=wallet.tenant_id, wallet_id=wallet.pk, amount=Decimal(20), idempotency_key="t1")
    assert created and not created_again and again.pk == first.pk
    with pytest.raises(WalletError) as reused:
        wallet_top_up(tenant_id=wallet.tenant_id, wallet_id=wallet.pk, amount=Decimal(21), idempotency_key="t1")
    assert reused.value.code == "idempotency_key_reused"
    hold, created = place(wallet, "5", "h1")
    same, created_again = place(wallet, "5", "h1")
    assert created and not created_again and same.pk == hold.pk
    hold_commit(tenant_id=wallet.tenant_id, hold_id=hold.pk, amount=Decimal(3))
    assert hold_commit(tenant_id=wallet.tenant_id, hold_id=hold.pk, amount=Decimal(3))[1] is False
    other, _ = place(wallet, "5", "h2")
    hold_release(tenant_id=wallet.tenant_id, hold_id=other.pk)
    assert hold_release(tenant_id=wallet.tenant_id, hold_id=other.pk)[1] is False
    assert WalletEntry.objects.filter(wallet=wallet).count() == 5  # top-up, hold, commit, hold, release
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.held) == (Decimal(17), Decimal(0))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("action", "code"),
    [
        (lambda w, h: hold_commit(tenant_id=w.tenant_id, hold_id=h.pk, amount=Decimal(1)), "hold_expired"),
        (lambda w, h: hold_release(tenant_id=w.tenant_id, hold_id=h.pk), "hold_expired"),
    ],
)
def test_a_hold_past_its_ttl_is_expired_by_whoever_finds_it(action, code):
    wallet = funded_wallet("10")
    hold, _ = place(wallet, "4", "h", ttl=1, now=timezone.now() - timedelta(seconds=5))
    with pytest.raises(WalletError) as refused:
        action(wallet, hold)
    assert refused.value.code == code
    hold.refresh_from_db()
    wallet.refresh_from_db()
    assert hold.status == "expired" and wallet.available == Decimal(10)  # the expiry itself stays


@pytest.mark.django_db
def test_bad_input_is_refused_with_the_field():
    wallet = funded_wallet("10")
    for amount in ("0", "-1", "0.0000000000001"):
        with pytest.raises(WalletError) as refused:
            wallet_top_up(tenant_id=wallet.tenant_id, wallet_id=wallet.pk, amount=Decimal(amount), idempotency_key=amount)
        assert (refused.value.code, refused.value.field, refused.value.status) == ("invalid_amount", "amount", 400)
    with pytest.raises(WalletError) as refused:
        place(wallet, "1", "ttl", ttl=0)
    assert refused.value.field == "ttl_seconds"
    other_tenant = funded_wallet("5")
    with pytest.raises(WalletError) as refused:
        wallet_top_up(tenant_id=wallet.tenant_id, wallet_id=other_tenant.pk, amount=Decimal(1), idempotency_key="x")
    assert refused.value.status == 404
    hold, _ = place(wallet, "1", "done")
    hold_release(tenant_id=wallet.tenant_id, hold_id=hold.pk)
    with pytest.raises(WalletError) as refused:
        hold_commit(tenant_id=wallet.tenant_id, hold_id=hold.pk, amount=Decimal(1))
    assert refused.value.code == "hold_released"


@pytest.mark.django_db
def test_expiry_sweep_is_bounded_and_idempotent():
    wallet = funded_wallet("100")
    past = timezone.now() - timedelta(minutes=5)
    for n in range(5):
        place(wallet, "10", f"old{n}", ttl=60, now=past)
    place(wallet, "10", "live", ttl=600)
    assert holds_expire(batch_size=3) == 3
    assert holds_expire(batch_size=3) == 2
    assert holds_expire(batch_size=3) == 0
    wallet.refresh_from_db()
    assert (wallet.held, wallet.available) == (Decimal(10), Decimal(90))


@pytest.mark.django_db
def test_low_balance_alerts_once_per_crossing():
    wallet = funded_wallet("100", thresholds=["50", "20"])
    place(wallet, "60", "a")  # 100 → 40 available: crosses 50
    place(wallet, "30", "b", reference="s2")  # 40 → 10: crosses 20
    place(wallet, "5", "c", reference="s3")  # 10 → 5: nothing new
    assert list(LowBalanceAlert.objects.filter(wallet=wallet).order_by("id").values_list("threshold", flat=True)) == [50, 20]
    wallet_top_up(tenant_id=wallet.tenant_id, wallet_id=wallet.pk, amount=Decimal(100), idempotency_key="t")
    place(wallet, "80", "d", reference="s4")  # 105 → 25 available: crosses 50 again
    assert LowBalanceAlert.objects.filter(wallet=wallet).count() == 3


# --- the rated stream ---------------------------------------------------------------------------


def rate(setup, event_id, quantity, **dimensions):
    now = timezone.now()
    event = validate_event(
        {
            "event_id": event_id, "api_key": setup.api_key, "metric": setup.metric.code, "quantity": quantity,
            "timestamp": (now - timedelta(seconds=1)).isoformat(), "dimensions": dimensions,
        },
        now=now,
    )
    return usage_batch_record(events=[IncomingEvent(setup.tenant.id, event.subject, event, now, 0, None)], cache=EnrichmentCache())


@pytest.mark.django_db
def test_prepaid_events_debit_the_wallet_as_they_are_rated_and_may_overdraw_it():
    setup = priced_setup(rate="2", billing_mode=Subscription.BillingMode.PREPAID)
    wallet = funded_wallet("5", customer=setup.customer, thresholds=["1"])
    rate(setup, "a", "1")
    rate(setup, "b", "3")  # 6 more: the wallet goes to −3, the shortfall stays visible
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.available) == (Decimal(-3), Decimal(-3))
    debits = WalletEntry.objects.filter(wallet=wallet, kind="debit").order_by("id")
    assert [(d.amount, d.rated_event.raw_event.event_id) for d in debits] == [(Decimal(-2), "a"), (Decimal(-6), "b")]
    assert sum(d.amount for d in debits) == -sum(r.amount for r in RatedEvent.objects.filter(subscription=setup.subscription))
    alert = LowBalanceAlert.objects.get(wallet=wallet)  # 3 → −3 crossed 1, once
    assert (alert.threshold, alert.available_before, alert.available_after, alert.entry_id) == (1, 3, -3, debits[1].pk)


@pytest.mark.django_db
def test_a_prepaid_customer_without_a_wallet_gets_one_with_the_shortfall():
    setup = priced_setup(rate="1.5", billing_mode=Subscription.BillingMode.PREPAID)
    rate(setup, "a", "2")
    wallet = Wallet.objects.get(customer=setup.customer, currency=setup.subscription.currency)
    assert wallet.balance == Decimal(-3)


@pytest.mark.django_db
def test_hybrid_wallet_pays_first_until_empty_the_rest_accrues():
    setup = priced_setup(rate="1", billing_mode=Subscription.BillingMode.HYBRID)
    wallet = funded_wallet("5", customer=setup.customer)
    rate(setup, "a", "3")
    rate(setup, "b", "4")  # 4 due, 2 left in the wallet: 2 paid, 2 accrue
    rate(setup, "c", "1")  # nothing left: all accrues
    wallet.refresh_from_db()
    assert wallet.balance == 0
    assert [e.amount for e in WalletEntry.objects.filter(wallet=wallet, kind="debit").order_by("id")] == [Decimal(-3), Decimal(-2)]


@pytest.mark.django_db
def test_postpaid_events_never_touch_a_wallet():
    setup = priced_setup(rate="1")
    wallet = funded_wallet("5", customer=setup.customer)
    rate(setup, "a", "3")
    wallet.refresh_from_db()
    assert wallet.balance == 5 and not WalletEntry.objects.filter(wallet=wallet, kind="debit").exists()


@pytest.mark.django_db
def test_a_session_draws_from_its_hold_first():
    setup = priced_setup(rate="1", billing_mode=Subscription.BillingMode.PREPAID)
    wallet = funded_wallet("100", customer=setup.customer)
    hold, _ = place(wallet, "10", "sess-hold", reference="sess-42")
    rate(setup, "a", "4", session_id="sess-42")
    rate(setup, "b", "3", session_id="other-session")
    rate(setup, "c", "8", session_id="sess-42")  # 6 left in the hold: 6 drawn, 2 from the free balance
    hold.refresh_from_db()
    wallet.refresh_from_db()
    assert hold.drawn == Decimal(10) and hold.status == "active"
    assert (wallet.balance, wallet.held, wallet.available) == (Decimal(85), Decimal(0), Decimal(85))
    # The session ends with nothing more to charge: the commit of 0 just closes the hold.
    hold_commit(tenant_id=wallet.tenant_id, hold_id=hold.pk, amount=Decimal(0))
    wallet.refresh_from_db()
    assert wallet.balance == Decimal(85)


@pytest.mark.django_db
def test_idempotency_keys_and_currencies_are_checked():
    wallet = funded_wallet("10")
    for key in ("", "k" * 151):
        with pytest.raises(WalletError) as refused:
            wallet_top_up(tenant_id=wallet.tenant_id, wallet_id=wallet.pk, amount=Decimal(1), idempotency_key=key)
        assert (refused.value.code, refused.value.field, refused.value.status) == ("invalid_idempotency_key", "idempotency_key", 400)
    place(wallet, "1", "same-key", ttl=60)
    with pytest.raises(WalletError) as refused:
        place(wallet, "1", "same-key", ttl=61)  # a retry must ask for the same hold
    assert refused.value.code == "idempotency_key_reused"
    with pytest.raises(WalletError) as refused:
        wallet_create(customer=wallet.customer, currency="EURO")
    assert refused.value.field == "currency"
    with pytest.raises(InsufficientFunds) as refused:
        place(wallet, "9.5", "too-much")
    assert "available balance 9 USD does not cover 9.5 USD" in refused.value.message


@pytest.mark.django_db
def test_thresholds_are_replaced_alone_and_adjustments_need_a_reason():
    from wallets.services import wallet_adjust, wallet_thresholds_set

    wallet = funded_wallet("10", thresholds=["5"])
    updated = wallet_thresholds_set(tenant_id=wallet.tenant_id, wallet_id=wallet.pk, low_balance_thresholds=[Decimal(1), Decimal(8), Decimal(1)])
    assert updated.low_balance_thresholds == ["8", "1"] and updated.balance == Decimal(10)
    for blank in (" ", ""):
        with pytest.raises(WalletError) as refused:
            wallet_adjust(tenant_id=wallet.tenant_id, wallet_id=wallet.pk, amount=Decimal(-2), idempotency_key="a", reason=blank)
        assert (refused.value.code, refused.value.field, refused.value.status) == ("reason_required", "reason", 400)
    entry, _ = wallet_adjust(
        tenant_id=wallet.tenant_id, wallet_id=wallet.pk, amount=Decimal("-2.5"), idempotency_key="a",
        reason=" goodwill reversal ", reference="ticket 42",
    )
    assert (entry.kind, entry.amount, entry.balance_after) == ("adjustment", Decimal("-2.5"), Decimal("7.5"))
    assert (entry.reason, entry.reference) == ("goodwill reversal", "ticket 42")
    assert LowBalanceAlert.objects.get(wallet=wallet).threshold == 8  # 10 → 7.5 crossed 8


@pytest.mark.django_db
def test_an_adjustment_below_zero_is_refused_unless_a_negative_balance_is_allowed():
    from django.db import IntegrityError, transaction

    from wallets.services import wallet_adjust

    wallet = funded_wallet("116")
    spent, _ = place(wallet, "0.245", "usage")
    hold_commit(tenant_id=wallet.tenant_id, hold_id=spent.pk, amount=Decimal("0.245"))  # usage: fractions of a cent
    common = {"tenant_id": wallet.tenant_id, "wallet_id": wallet.pk, "reason": "chargeback"}
    with pytest.raises(WalletError) as refused:
        wallet_adjust(**common, amount=Decimal(-500), idempotency_key="a")
    error = refused.value
    assert (error.code, error.status, error.field) == ("negative_balance_not_allowed", 409, "amount")
    assert (error.extra["balance"], error.extra["balance_after"]) == (Decimal("115.755"), Decimal("-384.245"))
    assert "115.755 USD to -384.245 USD" in error.message and "allow a negative balance" in error.message
    assert not WalletEntry.objects.filter(wallet=wallet, kind="adjustment").exists()
    # Down to exactly zero is not negative; a credit is never refused, even one that leaves a shortfall.
    wallet_adjust(**common, amount=Decimal("-115.75"), idempotency_key="b")  # 0.005 left
    entry, created = wallet_adjust(**common, amount=Decimal(-500), idempotency_key="a", allow_negative_balance=True)
    assert created and entry.balance_after == Decimal("-499.995") and entry.reason == "chargeback"
    # The retry of the allowed adjustment returns it, although the same debit would now be refused.
    again, created = wallet_adjust(**common, amount=Decimal(-500), idempotency_key="a")
    assert (again.pk, created) == (entry.pk, False)
    wallet_adjust(**common, amount=Decimal("100"), idempotency_key="c")  # -399.995: still short, a credit
    assert wallets_check() == []
    # The database keeps the rule that an adjustment has its reason.
    with pytest.raises(IntegrityError), transaction.atomic():
        WalletEntry.objects.filter(pk=entry.pk).update(reason="")


@pytest.mark.django_db
def test_a_replayed_batch_debits_nothing_twice():
    setup = priced_setup(rate="1", billing_mode=Subscription.BillingMode.PREPAID)
    wallet = funded_wallet("10", customer=setup.customer)
    now = timezone.now()
    event = validate_event(
        {"event_id": "once", "api_key": setup.api_key, "metric": setup.metric.code, "quantity": "2",
         "timestamp": (now - timedelta(seconds=1)).isoformat()},
        now=now,
    )
    batch = [IncomingEvent(setup.tenant.id, event.subject, event, now, 0, 7)]
    first = usage_batch_record(events=batch, cache=EnrichmentCache())
    replay = usage_batch_record(events=batch, cache=EnrichmentCache())  # the same Kafka record again
    assert (first.new, replay.new, replay.replayed) == (1, 0, 1)
    wallet.refresh_from_db()
    assert wallet.balance == Decimal(8) and WalletEntry.objects.filter(wallet=wallet, kind="debit").count() == 1
