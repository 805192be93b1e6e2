"""The rated record's wire form (usage.rated.v1): built on the hot path as one orjson dump, it is
the contract's JSON — decimals as plain exact text, datetimes in RFC 3339, ids as numbers."""

from datetime import datetime, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aforo.money import decimal_text
from billing.rated_wire import RatedWire
from billing.services import RatedRecord

decimals = st.decimals(min_value=-10**12, max_value=10**12, allow_nan=False, places=12) | st.sampled_from(
    [Decimal("0E-12"), Decimal("1.50"), Decimal("2.000000000000"), Decimal("1E+3")]
)
moments = st.datetimes(timezones=st.sampled_from([timezone.utc, ZoneInfo("Etc/UTC")]))


@given(st.text(), st.text(max_size=20), decimals, decimals, decimals, moments, st.none() | st.just([{"tier": 1, "units": "2", "amount": "0.5"}]))
def test_the_wire_form_is_the_contracts_json(event_id, dimension_key, quantity, before, amount, moment, tiers):
    record = RatedRecord(
        7, 8, 1, event_id, 3, 4, "api_calls", dimension_key, quantity, before, before + quantity, amount, "USD", 9,
        moment, moment, moment, moment, tiers, before,
    )
    try:
        wire = orjson.loads(record.to_wire())
    except orjson.JSONEncodeError:  # a lone surrogate: validation never lets one into an event id
        assert any(0xD800 <= ord(c) <= 0xDFFF for c in event_id + dimension_key)
        return
    assert wire["event_id"] == event_id and wire["dimension_key"] == dimension_key
    for name, value in (("quantity", quantity), ("units_before", before), ("amount", amount)):
        assert Decimal(wire[name]) == value and "E" not in wire[name]
        assert wire[name] == "0" or not (("." in wire[name]) and wire[name].endswith("0"))
    assert datetime.fromisoformat(wire["rated_at"]) == moment and wire["rated_at"].endswith("+00:00")
    assert (wire["rated_event_id"], wire["subscription_id"], wire["tiers"]) == (7, 4, tiers)
    assert record.key == b"1:4"
    assert record.to_wire() == reference_wire(record)


def reference_wire(record: RatedRecord) -> bytes:
    """The contract's JSON as orjson writes the record's dict (what to_wire did before it was
    written by hand for speed): the hand-written encoder must give these very bytes."""
    fields = record._asdict()
    for name in ("quantity", "units_before", "units_after", "amount", "blocked"):
        fields[name] = decimal_text(fields[name])
    return orjson.dumps(fields)


names = st.text() | st.sampled_from(["api_calls", 'a"b', "a\\b", "tab\there", "\x7f", "région", "日本", ""])


@given(names, names, names, decimals, decimals, moments, moments, st.none() | st.just([{"tier": 1, "units": "2", "amount": "0.5"}]))
def test_one_batch_encoder_gives_the_reference_bytes_for_every_record(event_id, metric, dimension_key, quantity, amount, start, moment, tiers):
    """Records of one batch share the encoder's caches (period bounds, metric codes, dimension
    keys): each record's bytes are still exactly the reference's."""
    records = [
        RatedRecord(n, n + 1, 1, f"{event_id}{n}", 3, 4, metric, dimension_key if n % 2 else "", quantity, amount * n,
                    amount * n + quantity, amount, "USD", 9, start, moment, moment, start, tiers)
        for n in range(3)
    ]
    encoder = RatedWire()
    for record in records:
        try:
            expected = reference_wire(record)
        except orjson.JSONEncodeError:
            with pytest.raises(orjson.JSONEncodeError):
                encoder.encode(record)
            continue
        assert encoder.encode(record) == expected
