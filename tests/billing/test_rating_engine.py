"""The rating entry point (per-unit until the pricing-engine issue) and its purity rule."""

import ast
from decimal import Decimal, localcontext
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.rating import ConfigError, compile_config, config_hash, quote, validate_config

RATING_DIR = Path(__file__).resolve().parents[2] / "billing" / "rating"


def test_rating_package_imports_no_django_and_no_database():
    for path in RATING_DIR.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                assert not name.startswith(("django", "psycopg", "redis", "confluent_kafka", "rest_framework")), f"{path.name} imports {name}"


@pytest.mark.parametrize(
    "units, expected",
    [("0", "0"), ("1000", "0"), ("1000.5", "0.0015"), ("1001", "0.003"), ("2500", "4.5"), ("1000000000000", "2999999997")],
)
def test_per_unit_after_included_free(units, expected):
    config = {"model": "per_unit", "rate": "0.003", "included_free": "1000"}
    assert quote(config, units) == Decimal(expected)


def test_exact_beyond_default_decimal_precision():
    config = {"model": "per_unit", "rate": "0.123456789012"}
    units = Decimal("98765432109876543.123456789012")
    with localcontext() as exact:
        exact.prec = 100
        expected = units * Decimal("0.123456789012")
    assert len(expected.as_tuple().digits) == 41  # more than the default context's 28
    assert quote(config, units) == expected


@pytest.mark.parametrize(
    "config, field",
    [
        ({"model": "tiered_magic", "rate": "1"}, "model"),
        ({"rate": "1"}, "model"),
        ({"model": "per_unit"}, "rate"),
        ({"model": "per_unit", "rate": "-0.01"}, "rate"),
        ({"model": "per_unit", "rate": 0.01}, "rate"),
        ({"model": "per_unit", "rate": "NaN"}, "rate"),
        ({"model": "per_unit", "rate": "abc"}, "rate"),
        ({"model": "per_unit", "rate": "0.0000000000001"}, "rate"),
        ({"model": "per_unit", "rate": "1", "included_free": "-5"}, "included_free"),
        ({"model": "per_unit", "rate": "1", "surprise": "1"}, "surprise"),
        ("per_unit", "config"),
    ],
)
def test_invalid_configs_name_the_field(config, field):
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    assert error.value.field == field


def test_validate_normalises_numbers_to_strings():
    assert validate_config({"model": "per_unit", "rate": 2}) == {"model": "per_unit", "rate": "2", "included_free": "0"}


def test_config_hash_is_stable_and_order_free():
    assert config_hash({"model": "per_unit", "rate": "1"}) == config_hash({"rate": "1", "model": "per_unit"})
    assert config_hash({"model": "per_unit", "rate": "1"}) != config_hash({"model": "per_unit", "rate": "2"})


units_strategy = st.decimals(min_value=0, max_value=10**12, places=4, allow_nan=False, allow_infinity=False)


@given(parts=st.lists(units_strategy, min_size=1, max_size=30), rate=st.decimals(min_value=0, max_value=100, places=6), free=units_strategy)
def test_delta_sums_equal_quote_of_total(parts, rate, free):
    pricer = compile_config({"model": "per_unit", "rate": str(rate), "included_free": str(free)})
    running, charged = Decimal(0), Decimal(0)
    for part in parts:
        charged += pricer.quote(running + part) - pricer.quote(running)
        running += part
    assert charged == pricer.quote(running) - pricer.quote(Decimal(0))
