"""Delta rating in the real pipeline code (the consumer's batch service on real PostgreSQL):
for every pricing model and every (subscription, metric, dimension, period), the rated amounts
sum to quote(total) − quote(zero usage), whatever the batch boundaries; each rated event keeps
its tier breakdown; dimension overrides rate into their own running totals."""

import random
import threading
from datetime import timedelta
from decimal import Decimal

import orjson
import pytest
from django.db import connection
from django.utils import timezone

from billing.models import RatedEvent, RunningTotal
from billing.rating import compile_config, quote
from metering.enrichment import EnrichmentCache
from billing.usage import IncomingEvent, usage_batch_record
from metering.validation import validate_event
from tests.factories import priced_setup

TIERS = [
    {"up_to": "10", "unit_amount": "1", "flat_amount": "5"},
    {"up_to": "25.5", "unit_amount": "0.5", "flat_amount": "2"},
    {"up_to": None, "unit_amount": "0.125"},
]
CONFIGS = {
    "per_unit": {"model": "per_unit", "rate": "0.003", "included_free": "7"},
    "flat": {"model": "flat", "amount": "49"},
    "included_quota": {"model": "included_quota", "quota": "12", "overage_rate": "0.25"},
    "graduated": {"model": "graduated", "tiers": TIERS},
    "volume": {"model": "volume", "tiers": TIERS},
    "package": {"model": "package", "package_size": "5", "rate": "3", "free_units": "2"},
    "percentage": {
        "model": "percentage", "rate": "2.9", "fixed_fee": "0.3", "per_transaction_min": "0.5",
        "per_transaction_max": "4", "min_fee": "9", "free_events": "3", "free_amount": "12",
    },
}


def incoming(setup, event_id, quantity, *, offset, dimensions=None, api_key=None):
    now = timezone.now()
    event = validate_event(
        {
            "event_id": event_id, "api_key": api_key or setup.api_key, "metric": setup.metric.code, "quantity": quantity,
            "timestamp": (now - timedelta(seconds=1)).isoformat(), "dimensions": dimensions or {},
        },
        now=now,
    )
    return IncomingEvent(setup.tenant.id, event.subject, event, now, 0, offset)


def quantities(rng: random.Random, count: int) -> list[str]:
    return [str(Decimal(rng.randint(0, 900)) / Decimal(rng.choice([1, 10, 100]))) for _ in range(count)]


def assert_ledger_matches_quote(setup, config, dimension_key=""):
    """The invariant, for one running-total key, checked against the engine's own quote."""
    rated = list(
        RatedEvent.objects.filter(subscription=setup.subscription, dimension_key=dimension_key).order_by("units_before", "id")
    )
    total = RunningTotal.objects.get(subscription=setup.subscription, dimension_key=dimension_key)
    model = compile_config(config).for_key(dimension_key)
    units = sum((r.quantity for r in rated), Decimal(0))
    expected = model.quote(units, [r.quantity for r in rated]) - model.quote(Decimal(0), [])
    assert sum((r.amount for r in rated), Decimal(0)) == total.amount == expected
    assert (total.units, total.event_count) == (units, len(rated))
    for r in rated:
        if r.tiers is not None:
            assert sum(Decimal(t["amount"]) for t in r.tiers) == r.amount
            assert sum(Decimal(t["units"]) for t in r.tiers) == r.quantity
    return rated, total


@pytest.mark.django_db
@pytest.mark.parametrize("model", sorted(CONFIGS))
@pytest.mark.parametrize("seed", [1, 2])
def test_rated_amounts_sum_to_the_quote_of_the_total_for_every_model(model, seed):
    rng = random.Random(seed)
    setup = priced_setup(config=CONFIGS[model])
    sizes = [rng.randint(1, 6) for _ in range(5)]
    offset = 0
    for batch_number, size in enumerate(sizes):
        batch = []
        for quantity in quantities(rng, size):
            offset += 1
            batch.append(incoming(setup, f"e{offset}", quantity, offset=offset))
        usage_batch_record(events=batch, cache=EnrichmentCache())
    rated, total = assert_ledger_matches_quote(setup, CONFIGS[model])
    assert len(rated) == sum(sizes)
    assert all(r.pricing_snapshot.config == setup.metric_config.config for r in rated)
    tiered = model in ("graduated", "volume")
    assert all((r.tiers is not None) == tiered for r in rated)


@pytest.mark.django_db
def test_graduated_and_volume_hand_computed_through_the_batches():
    graduated = priced_setup(config=CONFIGS["graduated"])
    volume = priced_setup(tenant=graduated.tenant, config=CONFIGS["volume"])
    # 4 + 6 = 10 (exactly on the first boundary), then 0.5 (into tier 2), then 20 (into tier 3).
    published = {}
    for prefix, setup in (("g", graduated), ("v", volume)):
        for offset, quantity in enumerate(["4", "6", "0.5", "20"]):
            outcome = usage_batch_record(events=[incoming(setup, f"{prefix}{offset}", quantity, offset=None)], cache=EnrichmentCache())
            published[f"{prefix}{offset}"] = orjson.loads(outcome.rated[0].to_wire())
    by_event = {r.raw_event.event_id: r for r in RatedEvent.objects.filter(subscription=graduated.subscription).select_related("raw_event")}
    # graduated: quote(0) = 5 (first tier's flat fee, charged by settlement); 4 → 4; 6 → 6 (on the
    # boundary: tier 2 not entered); 0.5 → 2 + 0.25 (enters tier 2); 20 → 15 × 0.5 + 2 (tier 3
    # flat 0) + 5 × 0.125 = 8.125. Together 20.375 = quote(30.5) − quote(0) = 25.375 − 5.
    assert [by_event[f"g{i}"].amount for i in range(4)] == [Decimal(4), Decimal(6), Decimal("2.25"), Decimal("8.125")]
    assert by_event["g2"].tiers == [{"tier": 2, "units": "0.5", "amount": "2.25"}]
    assert by_event["g3"].tiers == [{"tier": 2, "units": "15", "amount": "7.5"}, {"tier": 3, "units": "5", "amount": "0.625"}]
    assert published["g3"]["tiers"] == by_event["g3"].tiers and published["g3"]["amount"] == "8.125"
    assert RunningTotal.objects.get(subscription=graduated.subscription).amount == Decimal("20.375")
    assert quote(CONFIGS["graduated"], "30.5") - quote(CONFIGS["graduated"], "0") == Decimal("20.375")

    by_event = {r.raw_event.event_id: r for r in RatedEvent.objects.filter(subscription=volume.subscription).select_related("raw_event")}
    # volume: 4 → 9 (5 + 4), 10 → 15, 10.5 → 2 + 5.25 = 7.25 (the total falls: −7.75),
    # 30.5 → 30.5 × 0.125 = 3.8125 (−3.4375). Over quote(0) = 5: −1.1875.
    assert [by_event[f"v{i}"].amount for i in range(4)] == [Decimal(4), Decimal(6), Decimal("-7.75"), Decimal("-3.4375")]
    assert by_event["v2"].tiers == [
        {"tier": 1, "units": "-10", "amount": "-15"},
        {"tier": 2, "units": "10.5", "amount": "7.25"},
    ]
    assert RunningTotal.objects.get(subscription=volume.subscription).amount == Decimal("-1.1875")


@pytest.mark.django_db
def test_dimension_overrides_rate_into_their_own_running_totals():
    config = {
        "model": "per_unit", "rate": "0.01",
        "overrides": [
            {"match": {"tool_name": "generate"}, "price": {"model": "per_unit", "rate": "0.05"}},
            {"match": {"tool_name": "generate", "region": ["eu", "uk"]}, "price": CONFIGS["graduated"]},
        ],
    }
    setup = priced_setup(config=config)
    events = [
        incoming(setup, "s1", "3", offset=1, dimensions={"tool_name": "search"}),
        incoming(setup, "g1", "2", offset=2, dimensions={"tool_name": "generate", "region": "us"}),
        incoming(setup, "g2", "12", offset=3, dimensions={"tool_name": "generate", "region": "uk"}),
        incoming(setup, "n1", "1", offset=4),
        incoming(setup, "g3", "1", offset=5, dimensions={"tool_name": "generate"}),
    ]
    usage_batch_record(events=events, cache=EnrichmentCache())
    totals = {t.dimension_key: (t.units, t.amount) for t in RunningTotal.objects.filter(subscription=setup.subscription)}
    assert totals == {
        "": (Decimal(4), Decimal("0.04")),
        "tool_name=generate": (Decimal(3), Decimal("0.15")),
        # graduated at 12 units: 10 × 1 + 2 × 0.5 + 2 (tier 2 flat) = 13 over quote(0) (tier 1's flat 5).
        "region=eu|uk,tool_name=generate": (Decimal(12), Decimal(13)),
    }
    for key in totals:
        assert_ledger_matches_quote(setup, config, key)


@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_keep_the_percentage_state_exact():
    """Percentage needs the fee sum before the period minimum (transaction_fees) under the
    same lock as the units: two consumers rating one key at once lose neither."""
    setup = priced_setup(config=CONFIGS["percentage"])
    errors: list[BaseException] = []

    def rate(prefix: str) -> None:
        try:
            for n in range(5):
                usage_batch_record(
                    events=[incoming(setup, f"{prefix}{n}-{i}", str(5 + i), offset=None) for i in range(4)],
                    cache=EnrichmentCache(),
                )
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=rate, args=(p,)) for p in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    rated, total = assert_ledger_matches_quote(setup, CONFIGS["percentage"])
    assert len(rated) == 40
    fees = compile_config(CONFIGS["percentage"]).base
    expected_fees = Decimal(0)
    prior = Decimal(0)
    for index, r in enumerate(rated):
        expected_fees += fees.fee(index, prior, r.quantity)[0]
        prior += r.quantity
    assert total.transaction_fees == expected_fees


@pytest.mark.django_db
def test_replayed_unmatched_usage_is_priced_by_its_dimensions():
    from catalog import services
    from billing.usage import unmatched_usage_replay

    config = {
        "model": "per_unit", "rate": "0.01",
        "overrides": [{"match": {"tool_name": "generate"}, "price": {"model": "per_unit", "rate": "0.05"}}],
    }
    setup = priced_setup(config=config)
    secret = "sk_live_created_after_the_event"
    early = incoming(setup, "early", "2", offset=None, dimensions={"tool_name": "generate"}, api_key=secret)
    assert usage_batch_record(events=[early], cache=EnrichmentCache()).unmatched == 1
    services.api_key_create(app=setup.app, secret=secret)
    counts, rated = unmatched_usage_replay(tenant_id=setup.tenant.id)
    assert counts == {"rated": 1, "still_unmatched": 0}
    assert (rated[0].dimension_key, rated[0].amount) == ("tool_name=generate", Decimal("0.10"))
