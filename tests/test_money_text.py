"""aforo.money.decimal_text, the one "decimal as text": plain (no exponent), no trailing zeros,
exact — checked against the definition on every kind of Decimal hypothesis can make."""

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from aforo.money import decimal_text


def reference(value: Decimal) -> str:
    if value == 0:
        return "0"
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


@given(st.decimals(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [Decimal("0E-12"), Decimal("-0"), Decimal("-0.000"), Decimal("1E+5"), Decimal("1.50"), Decimal("100"), Decimal("2.000000000000")]
))
def test_decimal_text_is_plain_exact_and_without_trailing_zeros(value):
    text = decimal_text(value)
    assert text == reference(value)
    assert Decimal(text) == value and "E" not in text and "e" not in text
