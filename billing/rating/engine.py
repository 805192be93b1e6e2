"""Dispatch from a config's `model` to its pricing module, and the shared parsing rules."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation, localcontext
from functools import lru_cache
from typing import Any, Protocol

# Enough digits that no product or sum of validated parameters is ever rounded.
PRECISION = 80


class ConfigError(ValueError):
    """An invalid pricing config; `field` names the offending parameter (dotted path)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Pricer(Protocol):
    def quote(self, units: Decimal, events: Sequence[Decimal] | None = None) -> Decimal: ...


def parse_decimal(config: Mapping[str, Any], field: str, *, default: str | None = None, minimum: str = "0") -> Decimal:
    """Read a decimal parameter: a decimal string or an int; floats are refused (inexact)."""
    if field not in config or config[field] is None:
        if default is None:
            raise ConfigError(field, "is required")
        return Decimal(default)
    raw = config[field]
    if isinstance(raw, bool) or isinstance(raw, float):
        raise ConfigError(field, 'must be a decimal string such as "0.003" (floats are inexact)')
    try:
        value = Decimal(str(raw)) if isinstance(raw, (int, str)) else None
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite():
        raise ConfigError(field, f"must be a finite decimal, got {raw!r}")
    if value < Decimal(minimum):
        raise ConfigError(field, f"must be at least {minimum}, got {raw!r}")
    if value.as_tuple().exponent < -12:  # type: ignore[operator]
        raise ConfigError(field, "has more than 12 decimal places")
    return value


def _registry() -> dict[str, Any]:
    from . import per_unit

    return {"per_unit": per_unit}


def validate_config(config: Any) -> dict[str, Any]:
    """Check a config and return it normalised (numbers as decimal strings)."""
    if not isinstance(config, Mapping):
        raise ConfigError("config", "must be an object with a 'model' key")
    model = config.get("model")
    modules = _registry()
    if model not in modules:
        raise ConfigError("model", f"unknown pricing model {model!r}; expected one of {sorted(modules)}")
    return modules[model].normalise(config)


class _Exact:
    """Runs a model's quote under the engine's precision, so no caller can get a rounded sum."""

    __slots__ = ("_pricer",)

    def __init__(self, pricer: Pricer):
        self._pricer = pricer

    def quote(self, units: Decimal, events: Sequence[Decimal] | None = None) -> Decimal:
        with localcontext() as ctx:
            ctx.prec = PRECISION
            return self._pricer.quote(units, events)


@lru_cache(maxsize=4096)
def _compile_canonical(canonical: str) -> Pricer:
    config = json.loads(canonical)
    return _Exact(_registry()[config["model"]].compile(validate_config(config)))


def compile_config(config: Mapping[str, Any]) -> Pricer:
    """Parse and validate once; cached by the config's canonical form."""
    return _compile_canonical(_canonical(config))


def quote(config: Mapping[str, Any], units: Decimal | str | int, events: Sequence[Decimal | str] | None = None) -> Decimal:
    """The full, exact charge for one billing period of one metric at `units` of usage."""
    parsed_events = None if events is None else [Decimal(str(e)) for e in events]
    return compile_config(config).quote(Decimal(str(units)), parsed_events)


def _canonical(config: Mapping[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(config: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a config: the identity of a pricing snapshot."""
    return hashlib.sha256(_canonical(config).encode()).hexdigest()
