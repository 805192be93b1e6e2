"""The HoldExpiryScheduler task (in bounded batches, on the beat schedule) and `check_wallets`
(exit 0 and "N wallets consistent", or each problem and exit 1)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from aforo.celery import app
from tests.factories import priced_setup
from tests.wallets.test_admin import funded_wallet, place
from wallets import tasks
from wallets.models import Hold, Wallet, WalletEntry
from wallets.services import wallets_check

pytestmark = pytest.mark.django_db

D = Decimal


@pytest.fixture
def wallet():
    return funded_wallet(priced_setup(billing_mode="prepaid").customer, "100")


def _due(wallet: Wallet, amount: str, reference: str) -> Hold:
    return place(wallet, amount, reference, ttl_seconds=60, now=timezone.now() - timedelta(minutes=5))


def test_expiry_task_expires_due_holds_and_restores_available(wallet):
    due = _due(wallet, "30", "ended-session")
    live = place(wallet, "20", "live-session", ttl_seconds=3600)
    wallet.refresh_from_db()
    assert wallet.available == D("50")

    expired = tasks.holds_expire.delay().get()

    assert expired == 1
    due.refresh_from_db()
    live.refresh_from_db()
    wallet.refresh_from_db()
    assert (due.status, live.status) == ("expired", "active")
    assert (wallet.balance, wallet.held, wallet.available) == (D("100"), D("20"), D("80"))
    [expiry] = WalletEntry.objects.filter(hold=due, kind=WalletEntry.Kind.HOLD_EXPIRY)
    assert (expiry.amount, expiry.held_change) == (D("0"), D("-30"))
    assert tasks.holds_expire.delay().get() == 0  # idempotent: nothing more is due
    assert wallets_check() == []


def test_expiry_task_works_in_bounded_batches(wallet, settings):
    settings.WALLET_HOLD_EXPIRY_BATCH_SIZE = 2
    settings.WALLET_HOLD_EXPIRY_MAX_BATCHES = 2
    for index in range(5):
        _due(wallet, "1", f"s-{index}")
    other = funded_wallet(priced_setup().customer, "10")
    _due(other, "3", "other-wallet")

    assert tasks.holds_expire() == 4  # two full batches, then the cap
    assert Hold.objects.filter(status="active").count() == 2
    assert tasks.holds_expire() == 2  # a short batch ends the run
    assert not Hold.objects.filter(status="active").exists()
    assert Wallet.objects.filter(held=0).count() == 2
    assert wallets_check() == []


def test_the_expiry_task_is_on_the_one_beat_schedule():
    entry = app.conf.beat_schedule["wallet-holds-expire"]
    assert entry["task"] == tasks.holds_expire.name == "wallets.tasks.holds_expire"
    assert entry["schedule"] <= 10


def test_check_wallets_passes_when_consistent(wallet):
    place(wallet, "10", "a")
    funded_wallet(priced_setup().customer, "5")
    out = StringIO()
    call_command("check_wallets", stdout=out)
    assert out.getvalue() == "2 wallets consistent\n"
    one = StringIO()
    call_command("check_wallets", "--wallet", str(wallet.pk), stdout=one)
    assert one.getvalue() == "1 wallet consistent\n"


def test_check_wallets_exits_1_naming_a_corrupted_wallet(wallet):
    healthy = funded_wallet(priced_setup().customer, "5")
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {Wallet._meta.db_table} SET balance = balance + 1 WHERE id = %s", [wallet.pk])

    out = StringIO()
    with pytest.raises(CommandError) as failed:  # manage.py prints it on stderr and exits with its returncode
        call_command("check_wallets", stdout=out)

    assert failed.value.returncode == 1
    assert str(failed.value) == "2 problem(s) found in 2 wallet(s) checked."
    assert f"wallet {wallet.pk}: balance 101" in out.getvalue() and "!= sum of its ledger 100" in out.getvalue()
    assert f"wallet {healthy.pk}:" not in out.getvalue()
    call_command("check_wallets", "--wallet", str(healthy.pk), stdout=StringIO())  # the healthy one alone passes
    with pytest.raises(CommandError, match="^No wallet 999999999.$") as unknown:
        call_command("check_wallets", "--wallet", "999999999", stdout=StringIO())
    assert unknown.value.returncode == 1
