"""What the admin shows next to a metric config: the pricing models' reference (help text) and
a price preview — the quote at a handful of volumes worth looking at, computed by the rating
engine from the config on the form (the saved one, or the submitted one once it validates).

`preview_volumes` is pure (a price config in, volumes out); nothing here touches the database."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Any

from django.template.loader import render_to_string
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from billing.rating import ConfigError, Line, RatingError, breakdown, compile_config, dimension_key, quote, text, validate_config
from billing.rating.params import PRECISION

ZERO, ONE = Decimal(0), Decimal(1)
ROUND_VOLUMES = (Decimal(10), Decimal(1000), Decimal(1_000_000))
TRANSACTION_VOLUMES = (Decimal(10), Decimal(100), Decimal(1000))  # percentage: one transaction of each
MAX_VOLUMES = 16
MAX_PREVIEWED_OVERRIDES = 10

_GRADUATED_EXAMPLE = {
    "model": "graduated",
    "tiers": [
        {"up_to": "1000", "unit_amount": "0.01"},
        {"up_to": "10000", "unit_amount": "0.008"},
        {"up_to": None, "unit_amount": "0.005", "flat_amount": "5"},
    ],
}
# (model, its parameters, an example config); a test checks every example validates.
MODEL_REFERENCE: tuple[tuple[str, str, dict[str, Any]], ...] = (
    (
        "per_unit",
        "rate per unit; included_free units first (default 0)",
        {"model": "per_unit", "rate": "0.003", "included_free": "1000"},
    ),
    ("flat", "amount per period, whatever the usage", {"model": "flat", "amount": "49"}),
    (
        "included_quota",
        "quota units included; overage_rate per unit beyond it",
        {"model": "included_quota", "quota": "10000", "overage_rate": "0.002"},
    ),
    (
        "graduated",
        (
            "tiers of {up_to, unit_amount, flat_amount}: up_to inclusive and ascending, null on the last tier; "
            "each tier's units at its own unit_amount, a tier's flat_amount once usage enters it"
        ),
        _GRADUATED_EXAMPLE,
    ),
    (
        "volume",
        "the same tiers; all units at the unit_amount (plus flat_amount) of the tier the total falls in",
        {**_GRADUATED_EXAMPLE, "model": "volume"},
    ),
    (
        "package",
        (
            'rate per package of package_size units after free_units (default 0); rounding "up" (default: a '
            'started package is charged) or "down" (whole packages only)'
        ),
        {"model": "package", "package_size": "1000", "rate": "5", "free_units": "100"},
    ),
    (
        "percentage",
        (
            "per transaction: rate percent (0-100) of its amount + fixed_fee, clamped to [per_transaction_min, "
            "per_transaction_max]; a free_events / free_amount allowance; min_fee per period"
        ),
        {"model": "percentage", "rate": "2.9", "fixed_fee": "0.30", "per_transaction_max": "25", "min_fee": "10"},
    ),
    (
        "overrides",
        (
            "on any model: price some dimension values differently; the most specific matching override wins, "
            "other events take the base price"
        ),
        {
            "model": "per_unit",
            "rate": "0.003",
            "overrides": [{"match": {"region": ["eu", "uk"]}, "price": {"model": "per_unit", "rate": "0.004"}}],
        },
    ),
    (
        "limit",
        (
            "on any price but percentage (the base or an override's): a hard limit of units per period; overage "
            '"block" (usage beyond it is not charged) or "bill" (charged as usual, reported as overage)'
        ),
        {"model": "per_unit", "rate": "0.003", "limit": {"units": "100000", "overage": "block"}},
    ),
)
CONFIG_HELP_SHORT = (
    'The rating engine\'s config, decimals as strings (floats are refused): {"model": "per_unit", "rate": "0.003"}. '
    "Models: per_unit, flat, included_quota, graduated, volume, package, percentage; optional overrides and limit. "
    "Parameters and examples: below the prices."
)


def config_reference() -> SafeString:
    """The models' parameters with an example each, as HTML (config help text, version page)."""
    rows = format_html_join(
        "",
        "<tr><th>{}</th><td>{}<br><code>{}</code></td></tr>",
        ((model, parameters, json.dumps(example)) for model, parameters, example in MODEL_REFERENCE),
    )
    return format_html(
        '<details class="pricing-reference"><summary>Pricing models: parameters and examples. Decimals are strings '
        "(JSON floats are refused as inexact); a mistake is reported on this field with its path, e.g. "
        "<code>tiers[1].up_to</code>.</summary><table>{}</table></details>",
        rows,
    )


# --- which volumes to preview ---------------------------------------------------------------


def _just_past(bound: Decimal) -> Decimal:
    """The smallest step past a boundary at its own precision: 1000 -> 1001, 2.5 -> 2.6."""
    exponent = bound.normalize().as_tuple().exponent
    return bound + ONE.scaleb(min(int(exponent), 0))


def preview_volumes(config: Mapping[str, Any]) -> list[Decimal]:
    """Volumes worth pricing for one normalised price config (its overrides aside), ascending.

    percentage: one transaction of 10, 100 and 1,000. Otherwise 0, 1, 10, 1,000 and 1,000,000,
    and each boundary where the price changes (tier bounds, included units, package edges) with
    the volume just past it, lowest boundaries first, up to MAX_VOLUMES volumes in all."""
    model = compile_config(config).base
    if model.uses_events:
        return list(TRANSACTION_VOLUMES)
    volumes = {ZERO, ONE, *ROUND_VOLUMES}
    for bound in model.boundaries():
        pair = {bound, _just_past(bound)}
        if len(volumes | pair) > MAX_VOLUMES:
            break
        volumes |= pair
    return sorted(volumes)


# --- the preview ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PreviewRow:
    units: str
    amount: str
    lines: tuple[str, ...]
    # Display only: the fraction digits a cell lacks to line its decimal point up with the rest
    # of its column ("" / ".000" / "00"), drawn invisibly after the number (pricing_styles.html).
    units_pad: str = ""
    amount_pad: str = ""


@dataclass(frozen=True)
class PreviewSection:
    title: str  # "" when the config has no overrides
    volume_label: str
    rows: tuple[PreviewRow, ...]
    limit: str = ""  # "limit: 100,000 units (block)"; the rows' amounts are the engine's, before it


def _grouped(value: Decimal | None) -> str:
    """Exact decimal text with thousands separators: 1234567.5 -> 1,234,567.5."""
    return format(Decimal(text(value) or "0"), ",f")


def _fraction_digits(number: str) -> int:
    return len(number.partition(".")[2])


def _pads(numbers: list[str]) -> list[str]:
    """For each number of a column, the invisible fraction that aligns it on the decimal point."""
    widest = max((_fraction_digits(number) for number in numbers), default=0)
    pads = []
    for number in numbers:
        digits = _fraction_digits(number)
        missing = "0" * (widest - digits)
        pads.append(("." + missing if missing else "") if digits == 0 else missing)
    return pads


def _line_text(line: Line, price: Mapping[str, Any]) -> str:
    if line.units is None or line.unit_amount is None:
        return f"{line.description}: {_grouped(line.amount)}"
    percentage = price.get("model") == "percentage"
    rate = f"{price['rate']}%" if percentage else text(line.unit_amount)
    flat = f" + {_grouped(line.flat_amount)}" if line.flat_amount else ""
    formula = f"{line.description}: {_grouped(line.units)} × {rate}{flat}"
    with localcontext() as ctx:
        ctx.prec = PRECISION
        computed = line.units * line.unit_amount + (line.flat_amount or 0)
    if computed == line.amount:
        return f"{formula} = {_grouped(line.amount)}"
    # percentage only: the fee was clamped, or the free allowance applies; say so rather than
    # print an equation that does not hold.
    limit_max, limit_min = price.get("per_transaction_max"), price.get("per_transaction_min")
    if percentage and limit_max is not None and computed > line.amount == Decimal(limit_max):
        outcome = f"capped at per_transaction_max {_grouped(line.amount)}"
    elif percentage and limit_min is not None and computed < line.amount == Decimal(limit_min):
        outcome = f"raised to per_transaction_min {_grouped(line.amount)}"
    else:
        outcome = f"charged {_grouped(line.amount)}"
    return f"{formula} = {_grouped(computed)}, {outcome}"


def _section(title: str, price: Mapping[str, Any]) -> PreviewSection:
    priced = []
    for units in preview_volumes(price):
        try:
            amount = quote(price, units)
            _, lines = breakdown(price, units)
        except RatingError:  # a volume past the engine's limits: nothing to show
            continue
        priced.append((_grouped(units), _grouped(amount), tuple(_line_text(line, price) for line in lines)))
    units_pads = _pads([units for units, _, _ in priced])
    amount_pads = _pads([amount for _, amount, _ in priced])
    rows = tuple(
        PreviewRow(units, amount, lines, units_pad, amount_pad)
        for (units, amount, lines), units_pad, amount_pad in zip(priced, units_pads, amount_pads, strict=True)
    )
    label = "one transaction of" if price["model"] == "percentage" else "units"
    limit = price.get("limit")
    limit_text = f"limit: {_grouped(Decimal(limit['units']))} units ({limit['overage']})" if limit else ""
    return PreviewSection(title, label, rows, limit_text)


def price_preview(config: Any) -> list[PreviewSection] | None:
    """The preview of a config: one section for the base price and one per override (the first
    MAX_PREVIEWED_OVERRIDES), each priced on its own; None when the config does not validate."""
    try:
        normalised = validate_config(config)
    except ConfigError:
        return None
    base = {key: value for key, value in normalised.items() if key != "overrides"}
    overrides = normalised.get("overrides", [])
    if not overrides:
        return [_section("", base)]
    sections = [_section("base price (no override matches)", base)]
    for override in overrides[:MAX_PREVIEWED_OVERRIDES]:
        sections.append(_section(f"override {dimension_key(override['match'])}", override["price"]))
    return sections


def price_preview_html(config: Any, *, currency: str = "", compact: bool = False) -> SafeString:
    """The preview as a small table per section; `compact` (the version page's inline) leaves
    out the breakdown column."""
    if config in (None, "", {}):
        return format_html('<span class="help">{}</span>', "Save a config to see its prices.")
    sections = price_preview(config)
    if sections is None:
        return format_html('<span class="help">{}</span>', "No preview: the config is not valid.")
    context = {
        "sections": sections,
        "currency": currency,
        "compact": compact,
        "more_overrides": max(len(config.get("overrides", ())) - MAX_PREVIEWED_OVERRIDES, 0),
    }
    return render_to_string("admin/catalog/metricconfig/price_preview.html", context)
