"""percentage: each transaction pays amount × rate / 100 + fixed_fee, clamped to
[per_transaction_min, per_transaction_max]; the first `free_events` transactions and the first
`free_amount` of value are free, the allowance ending when the first of the two runs out; a
transaction entirely inside it pays nothing; the one that crosses free_amount (or uses up exactly
what was left) pays its fixed fee and the percentage on its part beyond; `min_fee` raises the
period total. `events` are the transaction amounts in arrival order, `units` their sum."""

from decimal import Decimal

import pytest

from billing.rating import Usage, compile_config, quote


def _config(**parameters: str) -> dict:
    return {"model": "percentage", **parameters}


def _quote(config: dict, events: list[str]) -> Decimal:
    units = sum((Decimal(e) for e in events), Decimal(0))
    return quote(config, units, events=events)


CASES = [
    # --- rate and fixed fee
    pytest.param(_config(rate="2.9", fixed_fee="0.30"), ["100"], "3.2", id="rate-and-fixed-fee"),  # 2.9 + 0.30
    # 3.2 + 1.45 + 0.3
    pytest.param(_config(rate="2.9", fixed_fee="0.30"), ["100", "50"], "4.95", id="fixed-fee-per-transaction"),
    pytest.param(_config(rate="2.9"), ["0.01"], "0.00029", id="tiny-amount-exact"),
    pytest.param(_config(rate="0.5"), ["0.000000000001"], "0.000000000000005", id="smallest-amount"),
    pytest.param(_config(rate="2.9", fixed_fee="0.30"), ["1000000000000"], "29000000000.3", id="huge-transaction"),
    pytest.param(_config(rate="2.9", fixed_fee="0.30"), ["0"], "0.3", id="zero-value-transaction-pays-fixed-fee"),
    # --- zero transactions
    pytest.param(_config(rate="2.9", fixed_fee="0.30"), [], "0", id="no-transactions"),
    # --- per-transaction clamp
    pytest.param(_config(rate="1", per_transaction_min="0.5"), ["10"], "0.5", id="min-clamp"),  # 0.1 → 0.5
    # 0.5 + 1
    pytest.param(_config(rate="1", per_transaction_min="0.5"), ["10", "100"], "1.5", id="min-clamp-only-below"),
    pytest.param(_config(rate="1", per_transaction_max="5"), ["1000"], "5", id="max-clamp"),  # 10 → 5
    pytest.param(_config(rate="1", per_transaction_max="5"), ["1000", "100"], "6", id="max-clamp-only-above"),  # 5 + 1
    pytest.param(
        _config(rate="1", fixed_fee="0.25", per_transaction_min="0.5", per_transaction_max="5"),
        ["10", "100", "1000"],
        "6.75",  # 0.35 → 0.5, 1.25, 10.25 → 5
        id="min-and-max-clamp-include-the-fixed-fee",
    ),
    # --- free_events only
    pytest.param(_config(rate="1", fixed_fee="0.25", free_events="2"), ["100", "100", "100"], "1.25", id="free-events"),
    pytest.param(
        _config(rate="1", fixed_fee="0.25", free_events="2"), ["1000000", "1", "100"], "1.25", id="free-events-any-size"
    ),
    pytest.param(
        _config(rate="1", fixed_fee="0.25", free_events="5"), ["100", "100"], "0", id="free-events-not-used-up"
    ),
    # --- free_amount only: 100 inside; the next crosses 150 with 50 beyond (0.5 + 0.25); then 1 + 0.25
    pytest.param(
        _config(rate="1", fixed_fee="0.25", free_amount="150"), ["100", "100", "100"], "2", id="free-amount-crossing"
    ),
    # uses up exactly what was left (100 + 100 = 200): pays its fixed fee on 0 beyond; then 1.25
    pytest.param(
        _config(rate="1", fixed_fee="0.25", free_amount="200"), ["100", "100", "100"], "1.5", id="free-amount-exact"
    ),
    pytest.param(
        _config(rate="1", fixed_fee="0.25", free_amount="1000"), ["100", "100"], "0", id="free-amount-not-used-up"
    ),
    # --- both: the allowance ends when the first runs out
    pytest.param(
        _config(rate="1", fixed_fee="0.25", free_events="2", free_amount="1000"),
        ["100", "100", "100"],
        "1.25",  # events run out first: the third pays in full though only 200 of 1000 was used
        id="both-events-run-out-first",
    ),
    pytest.param(
        _config(rate="1", fixed_fee="0.25", free_events="5", free_amount="150"),
        ["100", "100", "100"],
        "2",  # amount runs out first (second transaction crosses: 0.75); the third pays 1.25 though it is event 3 of 5
        id="both-amount-runs-out-first",
    ),
    pytest.param(
        _config(rate="1", fixed_fee="0.25", free_events="2", free_amount="50"),
        ["30", "30"],
        "0.35",  # the last free event crosses the amount: 10 beyond × 1% + 0.25
        id="both-last-free-event-crosses-amount",
    ),
    # --- the allowance pays no fixed fee and no minimum; the crossing transaction does get clamped
    pytest.param(_config(rate="1", per_transaction_min="1", free_events="1"), ["100"], "0", id="free-pays-no-minimum"),
    pytest.param(
        _config(rate="1", per_transaction_min="1", free_events="1"), ["100", "5"], "1", id="next-pays-minimum"
    ),
    # 10 beyond × 1% = 0.1 → 1
    pytest.param(
        _config(rate="1", per_transaction_min="1", free_amount="150"), ["100", "60"], "1", id="crossing-pays-minimum"
    ),
    # --- arrival order matters with free_amount
    pytest.param(_config(rate="1", fixed_fee="0.25", free_amount="150"), ["100", "100", "10"], "1.1", id="order-a"),
    pytest.param(_config(rate="1", fixed_fee="0.25", free_amount="150"), ["10", "100", "100"], "0.85", id="order-b"),
    # --- period minimum
    pytest.param(_config(rate="1", min_fee="10"), ["100"], "10", id="min-fee-raises"),  # 1 → 10
    pytest.param(_config(rate="1", min_fee="10"), ["2000"], "20", id="min-fee-below-total"),
    pytest.param(_config(rate="1", min_fee="10"), [], "10", id="min-fee-without-transactions"),
    # fees 0 + 0.75 + 1.25 = 2 → 5
    pytest.param(
        _config(rate="1", fixed_fee="0.25", free_amount="150", min_fee="5"),
        ["100", "100", "100"],
        "5",
        id="min-fee-after-allowance",
    ),
]


@pytest.mark.parametrize(("config", "events", "expected"), CASES)
def test_percentage_quote(config, events, expected):
    assert _quote(config, events) == Decimal(expected)


def test_units_without_events_is_one_transaction():
    config = _config(rate="2.9", fixed_fee="0.30")
    assert quote(config, "100") == quote(config, "100", events=["100"]) == Decimal("3.2")
    assert quote(config, "0") == Decimal(0)  # zero units and no events: no transaction
    assert quote(_config(rate="1", min_fee="10"), "0") == Decimal(10)


def test_rate_event_carries_transactions_fees_and_the_period_minimum():
    # free_amount 150, min_fee 5. Running fees before the minimum: 0, 0.75, 2, 3.25, 4.5 — all under
    # quote(0) = 5, so no event is charged until the fees pass the minimum.
    model = compile_config(_config(rate="1", fixed_fee="0.25", free_amount="150", min_fee="5")).base
    usage, amounts = Usage(), []
    for amount in ("100", "100", "100", "100", "100"):
        rating = model.rate_event(usage, Decimal(amount))
        amounts.append(rating.amount)
        usage = rating.usage
    assert amounts == [Decimal(0)] * 5
    assert usage == Usage(Decimal(500), 5, Decimal("4.5"))
    rating = model.rate_event(usage, Decimal(200))  # 2 + 0.25: fees 6.75, above the minimum by 1.75
    assert rating.amount == Decimal("1.75")
    assert rating.usage == Usage(Decimal(700), 6, Decimal("6.75"))
