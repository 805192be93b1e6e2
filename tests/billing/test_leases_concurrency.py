"""Budget leases under real concurrent transactions (threads, each its own PostgreSQL
connection): grants never share a unit, one idempotency key makes one lease, and the accounting
invariant holds in the database for every closed lease. The grant's read is slowed down inside
its transaction so that, without the subscription's row lock, the grants would overlap."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest
from django.db import connection

from billing.leases import services
from billing.leases.inputs import LeaseRequest
from billing.models import Lease
from tests.factories import priced_setup

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT_100 = {"model": "per_unit", "rate": "0.5", "limit": {"units": "100", "overage": "block"}}


def _request(setup, key: str, units: str) -> LeaseRequest:
    return LeaseRequest(f"customer:{setup.customer.pk}", setup.metric.code, {}, Decimal(units), Decimal(0), 60, "gw", key)


def _race(calls):
    """Run the calls at once, one thread and connection each; returns their results or errors."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(index, call):
        try:
            barrier.wait(timeout=10)
            results[index] = call()
        except Exception as error:  # the assertion below shows it
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


@pytest.fixture
def slow_read(monkeypatch):
    """Widen the window between the grant's read and its write."""
    real = services._rated_and_reserved

    def slow(key):
        found = real(key)
        time.sleep(0.15)
        return found

    monkeypatch.setattr(services, "_rated_and_reserved", slow)


def test_concurrent_grants_never_lease_more_than_the_limit(slow_read):
    setup = priced_setup(config=LIMIT_100)
    results = _race([lambda i=i: services.lease_create(tenant_id=setup.tenant.pk, request=_request(setup, f"k{i}", "30"))
                     for i in range(6)])
    refused = [r for r in results if isinstance(r, Exception)]
    assert all(getattr(r, "error_code", None) == "insufficient_units" for r in refused), refused
    leased = sorted(lease.leased for lease, _ in (r for r in results if not isinstance(r, Exception)))
    assert sum(leased) == Decimal(100) and leased == [10, 30, 30, 30]
    assert len(refused) == 2


def test_concurrent_retries_of_one_key_make_one_lease(slow_read):
    setup = priced_setup(config=LIMIT_100)
    results = _race([lambda: services.lease_create(tenant_id=setup.tenant.pk, request=_request(setup, "same", "30"))
                     for _ in range(4)])
    assert not [r for r in results if isinstance(r, Exception)], results
    assert len({lease.pk for lease, _ in results}) == 1
    assert sorted(created for _, created in results) == [False, False, False, True]
    assert Lease.objects.count() == 1


def test_returns_racing_the_expiry_sweep_close_each_lease_once():
    from datetime import timedelta

    from django.utils import timezone

    setup = priced_setup(config=LIMIT_100)
    leases = [services.lease_create(tenant_id=setup.tenant.pk, request=_request(setup, f"k{i}", "10"))[0] for i in range(5)]
    later = timezone.now() + timedelta(seconds=120)
    calls = [lambda: services.leases_expire(now=later)] + [
        lambda lease=lease: services.lease_return(tenant_id=setup.tenant.pk, lease_id=lease.pk, used=Decimal(3))
        for lease in leases
    ]
    results = _race(calls)
    closed = Lease.objects.filter(subscription=setup.subscription)
    assert all(row.status in ("returned", "expired") for row in closed)
    assert all(row.used + row.returned + row.expired == row.leased for row in closed)
    returned = sum(1 for row in closed if row.status == "returned")
    expired_by_sweep = results[0]
    assert returned + expired_by_sweep == 5  # each lease closed exactly once, by one of them
    refused = [r for r in results[1:] if isinstance(r, Exception)]
    assert [getattr(r, "error_code", r) for r in refused] == ["lease_expired"] * expired_by_sweep
