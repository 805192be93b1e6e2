"""A config's `model` → the module (or class) that compiles it. Imports every model module; no
model module imports it (so the engine has no import circle)."""

from __future__ import annotations

from typing import Any

from . import flat, included_quota, package, per_unit, percentage, tiered

MODELS = ("per_unit", "flat", "percentage", "included_quota", "graduated", "volume", "package")

_MODULES: dict[str, Any] = {
    "per_unit": per_unit,
    "flat": flat,
    "percentage": percentage,
    "included_quota": included_quota,
    "graduated": tiered.graduated,
    "volume": tiered.volume,
    "package": package,
}


def model_module(name: str) -> Any:
    return _MODULES[name]


def registry() -> dict[str, Any]:
    return _MODULES
