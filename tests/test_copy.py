"""aforo.copy: the ledgers' binary COPY helpers, against the real PostgreSQL."""

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aforo.copy import copy_rows, ids_take, numeric
from aforo.db import bulk_cursor

pytestmark = pytest.mark.django_db

units = st.decimals(min_value=-10**20, max_value=10**20, allow_nan=False, allow_infinity=False, places=12) | st.sampled_from(
    [Decimal("3"), Decimal("3.000000000000"), Decimal("1E+3"), Decimal("-0"), Decimal("0E-12"), Decimal("0.5"), Decimal("12345678901234567890")]
)


@settings(max_examples=60, deadline=None)
@given(st.lists(units, min_size=1, max_size=20))
def test_numeric_stores_every_value_exactly_as_the_decimal_would(values):
    """An integral Decimal goes to COPY as an int (psycopg's C path), any other as itself: the
    column (the ledger's numeric(38,12)) holds the same value either way, with its own scale."""
    converted = [numeric(v) for v in values]
    assert all(isinstance(c, int) for c, v in zip(converted, values) if v == v.to_integral_value())
    assert all(c is v for c, v in zip(converted, values) if v != v.to_integral_value())
    with bulk_cursor() as cursor:  # what the ledgers write with: a plain psycopg cursor
        cursor.execute("CREATE TEMP TABLE IF NOT EXISTS copy_numeric (n int, exact numeric(38, 12), copied numeric(38, 12))")
        cursor.execute("TRUNCATE copy_numeric")
        copy_rows(cursor, "copy_numeric", ["n", "exact", "copied"], ["int4", "numeric", "numeric"],
                  [(i, v, c) for i, (v, c) in enumerate(zip(values, converted))])
        cursor.execute("SELECT exact, copied, exact::text = copied::text FROM copy_numeric ORDER BY n")
        rows = cursor.fetchall()
    assert [r[0] for r in rows] == values
    assert all(same_text and a == b for a, b, same_text in rows)


def test_ids_take_draws_ascending_fresh_ids_from_the_tables_sequence():
    with bulk_cursor() as cursor:
        first = ids_take(cursor, "metering_rawevent", 5)
        second = ids_take(cursor, "metering_rawevent", 3)
        assert ids_take(cursor, "metering_rawevent", 0) == []
    assert first == sorted(first) and len(set(first + second)) == 8 and min(second) > max(first)
