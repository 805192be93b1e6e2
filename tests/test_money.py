"""aforo.money, the shared kernel's currency table and minor-unit arithmetic: pure, no database."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aforo import money
from aforo.money import (
    ISO_4217_MINOR_UNITS,
    UnknownCurrency,
    currency_is_valid,
    currency_minor_units,
    is_multiple_of_minor_unit,
    minor_unit,
    quantize_to_minor_unit,
)


def test_the_table_is_iso_4217_list_one_with_numeric_minor_units():
    assert {code: ISO_4217_MINOR_UNITS[code] for code in ("USD", "EUR", "JPY", "KWD", "BHD", "CLF", "UYW", "XCG")} == {
        "USD": 2, "EUR": 2, "JPY": 0, "KWD": 3, "BHD": 3, "CLF": 4, "UYW": 4, "XCG": 2,
    }
    assert len(ISO_4217_MINOR_UNITS) == 165
    assert all(len(code) == 3 and code.isascii() and code.isupper() for code in ISO_4217_MINOR_UNITS)
    assert set(ISO_4217_MINOR_UNITS.values()) == {0, 2, 3, 4}
    with pytest.raises(TypeError):
        ISO_4217_MINOR_UNITS["ABC"] = 2  # type: ignore[index]  # read-only: one table for every app


@pytest.mark.parametrize(
    "code",
    ["XTS", "XXX",  # testing / no currency: not money
     "XAU", "XAG", "XPD", "XPT", "XDR", "XBA", "XSU", "XUA",  # no minor unit in ISO 4217
     "HRK", "SLL", "ANG", "BGN", "ZWL", "CUC",  # withdrawn
     "ABC", "usd", "US", "USDT", "", None, 840],
)
def test_codes_that_are_not_active_money_are_invalid(code):
    assert not currency_is_valid(code)
    with pytest.raises(UnknownCurrency):
        currency_minor_units(code)


def test_an_explicit_default_is_for_legacy_rows_only():
    assert currency_minor_units("ZZZ", default=money.LEGACY_MINOR_UNITS) == 2
    assert currency_minor_units("JPY", default=money.LEGACY_MINOR_UNITS) == 0  # the table wins
    assert minor_unit("ZZZ", default=2) == Decimal("0.01")


@pytest.mark.parametrize(
    ("code", "unit"), [("USD", "0.01"), ("JPY", "1"), ("KWD", "0.001"), ("CLF", "0.0001")],
)
def test_minor_unit(code, unit):
    assert minor_unit(code) == Decimal(unit) and str(minor_unit(code)) == unit


def test_quantize_names_its_rounding_mode():
    assert quantize_to_minor_unit(Decimal("0.125"), "USD", rounding=ROUND_HALF_UP) == Decimal("0.13")
    assert quantize_to_minor_unit(Decimal("0.125"), "USD", rounding=ROUND_HALF_EVEN) == Decimal("0.12")
    assert quantize_to_minor_unit(Decimal("12.5"), "JPY", rounding=ROUND_HALF_UP) == Decimal("13")
    with pytest.raises(TypeError):
        quantize_to_minor_unit(Decimal("1"), "USD")  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("amount", "code", "whole"),
    [("1.005", "USD", False), ("1.5", "JPY", False), ("1.50", "USD", True), ("1.500000", "USD", True),
     ("1E+3", "JPY", True), ("0E-30", "JPY", True), ("-0.01", "USD", True), ("-0.001", "USD", False),
     ("1.0005", "KWD", False), ("1.0005", "CLF", True),
     ("1.0000000000000000000000000000001", "USD", False),  # beyond the context's 28 digits: still exact
     ("NaN", "USD", False), ("Infinity", "USD", False)],
)
def test_is_multiple_of_minor_unit(amount, code, whole):
    assert is_multiple_of_minor_unit(Decimal(amount), code) is whole


@given(
    amount=st.decimals(min_value=Decimal("-1e15"), max_value=Decimal("1e15"), places=6, allow_nan=False),
    code=st.sampled_from(sorted(ISO_4217_MINOR_UNITS)),
)
def test_a_multiple_of_the_minor_unit_is_exactly_what_quantizing_leaves_unchanged(amount, code):
    unchanged = quantize_to_minor_unit(amount, code, rounding=ROUND_HALF_UP) == amount
    assert is_multiple_of_minor_unit(amount, code) is unchanged
