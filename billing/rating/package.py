"""package: `rate` per package of `package_size` units, after `free_units`. `rounding` "up"
(default) charges every started package in full; "down" only whole packages. Never negative."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .model import Model
from .params import ConfigError, MAX_UNITS, ZERO, param, reject_unknown, text
from .types import Line

FIELDS = {"model", "package_size", "rate", "free_units", "rounding"}
ROUNDING = ("up", "down")


def normalise(config: Mapping[str, Any]) -> dict[str, Any]:
    reject_unknown(config, FIELDS, "package")
    size = param(config, "package_size", maximum=MAX_UNITS)
    if size <= 0:
        raise ConfigError("package_size", "must be greater than 0")
    rounding = config.get("rounding")
    rounding = "up" if rounding is None else rounding
    if rounding not in ROUNDING:
        raise ConfigError("rounding", f"must be 'up' or 'down', got {rounding!r}")
    return {
        "model": "package",
        "package_size": text(size),
        "rate": text(param(config, "rate")),
        "free_units": text(param(config, "free_units", default="0", maximum=MAX_UNITS)),
        "rounding": rounding,
    }


@dataclass(frozen=True)
class Package(Model):
    name = "package"
    package_size: Decimal
    rate: Decimal
    free_units: Decimal
    round_up: bool

    def included_units(self) -> Decimal | None:
        return self.free_units or None

    def boundaries(self) -> list[Decimal]:
        return [b for b in (self.free_units, self.free_units + self.package_size, self.free_units + 2 * self.package_size) if b]

    def packages(self, units: Decimal) -> tuple[Decimal, Decimal]:
        """(billable units, packages charged)."""
        billable = units - self.free_units
        if billable <= 0:
            return ZERO, ZERO
        whole, rest = divmod(billable, self.package_size)  # exact: integral quotient and remainder
        return billable, whole + 1 if rest and self.round_up else whole

    def _quote(self, units: Decimal, events: Sequence[Decimal] | None) -> Decimal:
        return self.packages(units)[1] * self.rate

    def _lines(self, units: Decimal, events: Sequence[Decimal] | None) -> list[Line]:
        lines = []
        if self.free_units:
            lines.append(Line(f"free units (first {text(self.free_units)})", ZERO, units=min(units, self.free_units), unit_amount=ZERO))
        billable, packages = self.packages(units)
        mode = "started" if self.round_up else "whole"
        lines.append(
            Line(
                f"{text(packages)} {mode} package(s) of {text(self.package_size)} units for {text(billable)} units",
                packages * self.rate, units=packages, unit_amount=self.rate,
            )
        )
        return lines


def compile(config: Mapping[str, Any]) -> Package:  # shadows the builtin: the module's contract name
    return Package(
        package_size=Decimal(config["package_size"]), rate=Decimal(config["rate"]),
        free_units=Decimal(config["free_units"]), round_up=config["rounding"] == "up",
    )
