"""flat: `amount` per period whatever the usage, also at zero; every event's delta is zero."""

from decimal import Decimal

import pytest

from billing.rating import Usage, compile_config, quote

CONFIG = {"model": "flat", "amount": "49.99"}


@pytest.mark.parametrize("units", ["0", "0.5", "1", "1000000000000", "100000000000000000000000000"])
def test_flat_charges_the_amount_regardless_of_usage(units):
    assert quote(CONFIG, units) == Decimal("49.99")


def test_flat_of_zero_is_zero():
    assert quote({"model": "flat", "amount": "0"}, "12") == Decimal(0)


def test_events_rate_to_zero_and_still_count():
    model = compile_config(CONFIG).base
    rating = model.rate_event(Usage(Decimal(3), 3), Decimal(7))
    assert rating.amount == Decimal(0)
    assert rating.usage == Usage(Decimal(10), 4)
