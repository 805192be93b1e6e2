"""graduated and volume: `tiers` of {up_to, unit_amount, flat_amount}.

`up_to` is an inclusive cumulative upper bound, ascending; a tier covers (previous up_to, up_to];
the last tier has `up_to: null`. Fractional units fall where their value says (10.5 is past 10).

graduated: each tier's units at its own unit_amount; a tier's flat_amount once usage enters it
    (units > previous up_to); the first tier's flat_amount even at zero units.
volume: all units at the unit_amount of the first tier with units <= up_to, plus that tier's
    flat_amount; zero units -> the first tier. The total may fall across a boundary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .model import TieredModel
from .params import ConfigError, MAX_UNITS, ZERO, parse_decimal, reject_unknown, text
from .types import Line

FIELDS = {"model", "tiers"}
TIER_FIELDS = {"up_to", "unit_amount", "flat_amount"}
MAX_TIERS = 100

Tier = tuple[Decimal | None, Decimal, Decimal]  # (up_to, unit_amount, flat_amount)


def normalise_tiers(config: Mapping[str, Any], model: str) -> dict[str, Any]:
    reject_unknown(config, FIELDS, model)
    raw = config.get("tiers")
    if raw is None:
        raise ConfigError("tiers", 'is required: [{"up_to": "1000", "unit_amount": "0.01"}, …, {"up_to": null, …}]')
    if not isinstance(raw, list) or not raw:
        raise ConfigError("tiers", "must be a non-empty list of {up_to, unit_amount, flat_amount}")
    if len(raw) > MAX_TIERS:
        raise ConfigError("tiers", f"at most {MAX_TIERS} tiers")
    tiers = []
    previous = ZERO
    for i, tier in enumerate(raw):
        field = f"tiers[{i}]"
        if not isinstance(tier, Mapping):
            raise ConfigError(field, "must be an object {up_to, unit_amount, flat_amount}")
        for name in sorted(set(tier) - TIER_FIELDS):
            raise ConfigError(f"{field}.{name}", f"is not a tier field; expected {sorted(TIER_FIELDS)}")
        last = i == len(raw) - 1
        if "up_to" not in tier:
            raise ConfigError(f"{field}.up_to", "is required (null for the last tier)")
        up_to = tier["up_to"]
        if up_to is None:
            if not last:
                raise ConfigError(f"{field}.up_to", "only the last tier may be unbounded (null)")
        else:
            if last:
                raise ConfigError(f"{field}.up_to", "the last tier must be unbounded: up_to null")
            bound = parse_decimal(up_to, f"{field}.up_to", maximum=MAX_UNITS)
            if bound <= previous:
                what = "greater than 0" if i == 0 else f"greater than the previous tier's up_to ({text(previous)}): tiers must ascend"
                raise ConfigError(f"{field}.up_to", f"must be {what}")
            previous = bound
        if tier.get("unit_amount") is None and tier.get("flat_amount") is None:
            raise ConfigError(f"{field}.unit_amount", "is required (or flat_amount)")
        amounts = {
            name: ZERO if tier.get(name) is None else parse_decimal(tier[name], f"{field}.{name}")
            for name in ("unit_amount", "flat_amount")
        }
        tiers.append({"up_to": None if up_to is None else text(previous), **{k: text(v) for k, v in amounts.items()}})
    return {"model": model, "tiers": tiers}


def _bounds(lower: Decimal, up_to: Decimal | None) -> str:
    return f"({text(lower)}, ∞)" if up_to is None else f"({text(lower)}, {text(up_to)}]"


@dataclass(frozen=True)
class Graduated(TieredModel):
    name = "graduated"
    tiers: tuple[Tier, ...]

    def boundaries(self) -> list[Decimal]:
        return [up_to for up_to, _, _ in self.tiers if up_to is not None]

    def _tier_totals(self, units: Decimal) -> list[tuple[int, Decimal, Decimal]]:
        totals = []
        lower = ZERO
        for number, (up_to, unit_amount, flat_amount) in enumerate(self.tiers, start=1):
            top = units if up_to is None or units < up_to else up_to
            totals.append((number, top - lower, flat_amount + (top - lower) * unit_amount))
            if up_to is None or units <= up_to:
                break
            lower = up_to
        return totals

    def _lines(self, units: Decimal, events: Sequence[Decimal] | None) -> list[Line]:
        lines = []
        for number, in_tier, amount in self._tier_totals(units):
            up_to, unit_amount, flat_amount = self.tiers[number - 1]
            lower = ZERO if number == 1 else self.tiers[number - 2][0]
            lines.append(
                Line(f"tier {number} {_bounds(lower, up_to)}", amount, units=in_tier, unit_amount=unit_amount,
                     flat_amount=flat_amount, tier=number)
            )
        return lines


@dataclass(frozen=True)
class Volume(TieredModel):
    name = "volume"
    monotone = False  # all units at the tier the total falls in: a cheaper tier can lower the charge
    tiers: tuple[Tier, ...]
    boundaries = Graduated.boundaries

    def _tier_totals(self, units: Decimal) -> list[tuple[int, Decimal, Decimal]]:
        for number, (up_to, unit_amount, flat_amount) in enumerate(self.tiers, start=1):
            if up_to is None or units <= up_to:
                return [(number, units, flat_amount + units * unit_amount)]
        raise AssertionError("the last tier is unbounded")  # validated

    def _lines(self, units: Decimal, events: Sequence[Decimal] | None) -> list[Line]:
        [(number, in_tier, amount)] = self._tier_totals(units)
        up_to, unit_amount, flat_amount = self.tiers[number - 1]
        lower = ZERO if number == 1 else self.tiers[number - 2][0]
        return [
            Line(f"all units at tier {number} {_bounds(lower, up_to)}", amount, units=in_tier, unit_amount=unit_amount,
                 flat_amount=flat_amount, tier=number)
        ]


def _compile_tiers(config: Mapping[str, Any]) -> tuple[Tier, ...]:
    return tuple(
        (None if t["up_to"] is None else Decimal(t["up_to"]), Decimal(t["unit_amount"]), Decimal(t["flat_amount"]))
        for t in config["tiers"]
    )


class graduated:  # lower-case: a module-like namespace for the registry
    @staticmethod
    def normalise(config: Mapping[str, Any]) -> dict[str, Any]:
        return normalise_tiers(config, "graduated")

    @staticmethod
    def compile(config: Mapping[str, Any]) -> Graduated:
        return Graduated(_compile_tiers(config))


class volume:  # lower-case: a module-like namespace for the registry
    @staticmethod
    def normalise(config: Mapping[str, Any]) -> dict[str, Any]:
        return normalise_tiers(config, "volume")

    @staticmethod
    def compile(config: Mapping[str, Any]) -> Volume:
        return Volume(_compile_tiers(config))
