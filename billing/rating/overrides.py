"""Configs: validation and normalisation, dimension overrides (PriceBook), compilation (cached
per canonical config) and the config hash.

A config is `{"model": …, parameters…, "overrides": [...]}`. `overrides` (optional) price
particular dimension values differently, each with its own running total:

    "overrides": [
        {"match": {"tool_name": "generate"}, "price": {"model": "per_unit", "rate": "0.05"}},
        {"match": {"tool_name": ["search", "lookup"], "region": "eu"}, "price": {...}}
    ]

An override applies to an event when every dimension it names has one of the listed values.
The most specific applicable override wins (the one naming the most dimensions; among equals,
the first listed); an event no override matches is priced by the base config. The override's
`dimension_key` (e.g. "region=eu,tool_name=lookup|search") keys its running total; the base
config's key is "".

Any price (the base config, an override's `price`) may carry a hard usage `limit` per period:

    "limit": {"units": "100000", "overage": "block"}     # or "bill"

"block": usage beyond the limit is never charged — the gateway refuses it, and what gets through
is recorded and rated at zero as it comes (Model.rate_limited, called by the rating planner; the
rated event carries it as blocked units); "bill": it is charged as usual and reported as overage
(Model.overage_units). quote, rate_event and breakdown price a config the same with or without
a limit; only the planner applies one. `"fail": "open" | "closed"` (default open) is what the
entitlement check answers for this price when its counters cannot be read. Not on per-transaction models (percentage): a limit counts
units. A config without `limit` normalises, and hashes, exactly as before limits existed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import lru_cache
from typing import Any

from .model import Model
from .params import (
    DIMENSION_KEY_MAX,
    KEY_SEPARATORS,
    FAIL_OPEN,
    FAILS,
    LIMIT_FIELDS,
    MAX_OVERRIDES,
    MAX_UNITS,
    OVERAGES,
    ConfigError,
    UsageError,
    nested,
    parse_decimal,
    text,
)
from .registry import MODELS, registry as _registry
from .types import Limit, Rating, Usage

def _normalise_limit(raw: Any) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        raise ConfigError("limit", 'must be an object such as {"units": "100000", "overage": "block"}')
    unknown = sorted(str(key) for key in set(raw) - set(LIMIT_FIELDS))
    if unknown:
        raise ConfigError(f"limit.{unknown[0]}", f"is not part of a limit; expected {list(LIMIT_FIELDS)}")
    if raw.get("units") is None:
        raise ConfigError("limit.units", "is required: the units allowed per period")
    units = parse_decimal(raw["units"], "limit.units", maximum=MAX_UNITS)
    overage = raw.get("overage")
    if not isinstance(overage, str) or overage not in OVERAGES:
        raise ConfigError(
            "limit.overage",
            f"must be one of {list(OVERAGES)} (block: usage beyond the limit is not charged; bill: it is "
            f"charged as overage), got {overage!r}",
        )
    fail = raw.get("fail", FAIL_OPEN)
    if not isinstance(fail, str) or fail not in FAILS:
        raise ConfigError(
            "limit.fail",
            f"must be one of {list(FAILS)} (what the entitlement check answers when its counters are unavailable: "
            f"open allows, closed denies), got {fail!r}",
        )
    normalised = {"units": text(units), "overage": overage}
    if fail != FAIL_OPEN:  # the default stays out of the normalised form: existing configs hash as before
        normalised["fail"] = fail
    return normalised


def _normalise_price(config: Any) -> dict[str, Any]:
    if not isinstance(config, Mapping):
        raise ConfigError("config", "must be an object with a 'model' key")
    model = config.get("model")
    modules = _registry()
    if model is None:
        raise ConfigError("model", f"is required; one of {list(MODELS)}")
    if not isinstance(model, str) or model not in modules:
        raise ConfigError("model", f"unknown pricing model {model!r}; expected one of {list(MODELS)}")
    if "limit" not in config:
        return modules[model].normalise(config)
    # Absent and null are the same (no limit): the normalised form then has no `limit` key, so a
    # config's hash does not depend on limits existing.
    normalised = modules[model].normalise({key: value for key, value in config.items() if key != "limit"})
    if config["limit"] is None:
        return normalised
    if modules[model].compile(normalised).uses_events:
        raise ConfigError(
            "limit", f"is not available on the {model} model: limits count units and {model} prices transactions"
        )
    return {**normalised, "limit": _normalise_limit(config["limit"])}


def _normalise_match(raw: Any, field: str) -> dict[str, list[str]]:
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(field, 'must be a non-empty object of dimension names to a value or a list of values, e.g. {"tool_name": "search"}')
    match: dict[str, list[str]] = {}
    for name, values in sorted(raw.items()):
        if not isinstance(name, str) or not 1 <= len(name) <= 64 or set(name) & KEY_SEPARATORS:
            raise ConfigError(field, f"dimension names are 1 to 64 characters, without {' '.join(sorted(KEY_SEPARATORS))}")
        listed = values if isinstance(values, list) else [values]
        if not listed or any(isinstance(v, bool) or not isinstance(v, (str, int)) or str(v) == "" for v in listed):
            raise ConfigError(f"{field}.{name}", "must be a non-empty string (or integer), or a non-empty list of them")
        if any(set(str(v)) & KEY_SEPARATORS for v in listed):
            raise ConfigError(
                f"{field}.{name}", f"values may not contain {' '.join(sorted(KEY_SEPARATORS))} (they separate the dimension key)"
            )
        match[name] = sorted({str(v) for v in listed})
    return match


def dimension_key(match: Mapping[str, Sequence[str]]) -> str:
    return ",".join(f"{name}={'|'.join(values)}" for name, values in sorted(match.items()))


def validate_config(config: Any) -> dict[str, Any]:
    """Check a config and return it normalised: every parameter present, numbers as decimal
    strings, override matches sorted. Raises ConfigError naming the field."""
    if isinstance(config, Mapping) and "overrides" in config:
        base = {k: v for k, v in config.items() if k != "overrides"}
        normalised = _normalise_price(base)
        raw = config["overrides"]
        if not isinstance(raw, list):
            raise ConfigError("overrides", "must be a list of {match, price} objects")
        if len(raw) > MAX_OVERRIDES:
            raise ConfigError("overrides", f"at most {MAX_OVERRIDES} overrides")
        overrides, keys = [], {}
        for i, override in enumerate(raw):
            field = f"overrides[{i}]"
            if not isinstance(override, Mapping):
                raise ConfigError(field, "must be an object with 'match' and 'price'")
            for name in sorted(set(override) - {"match", "price"}):
                raise ConfigError(f"{field}.{name}", "is not part of an override; expected 'match' and 'price'")
            if "match" not in override:
                raise ConfigError(f"{field}.match", "is required")
            if "price" not in override:
                raise ConfigError(f"{field}.price", "is required")
            match = _normalise_match(override["match"], f"{field}.match")
            key = dimension_key(match)
            if len(key) > DIMENSION_KEY_MAX:
                raise ConfigError(f"{field}.match", f"is too long: its dimension key may be at most {DIMENSION_KEY_MAX} characters")
            if key in keys:
                raise ConfigError(f"{field}.match", f"repeats the match of overrides[{keys[key]}]")
            keys[key] = i
            price = override["price"]
            if not isinstance(price, Mapping):
                raise ConfigError(f"{field}.price", "must be an object with a 'model' key")
            if "overrides" in price:
                raise ConfigError(f"{field}.price.overrides", "overrides cannot be nested")
            with nested(f"{field}.price"):
                overrides.append({"match": match, "price": _normalise_price(price)})
        if overrides:
            normalised["overrides"] = overrides
        return normalised
    return _normalise_price(config)


@dataclass(frozen=True, slots=True)
class Override:
    key: str
    match: tuple[tuple[str, frozenset[str]], ...]
    model: Model

    def applies(self, dimensions: Mapping[str, Any]) -> bool:
        for name, values in self.match:
            value = dimensions.get(name)
            if value is None or str(value) not in values:
                return False
        return True


@dataclass(frozen=True)
class PriceBook:
    """A compiled config: the base model and its dimension overrides, most specific first.
    Quoting a PriceBook directly prices the base config."""

    base: Model
    overrides: tuple[Override, ...] = ()
    _by_key: dict[str, Model] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_key[""] = self.base
        for override in self.overrides:
            self._by_key[override.key] = override.model

    @property
    def dimensional(self) -> bool:
        return bool(self.overrides)

    def select(self, dimensions: Mapping[str, Any] | None) -> tuple[str, Model]:
        """(dimension_key, model) pricing an event with these dimensions."""
        if dimensions:
            for override in self.overrides:
                if override.applies(dimensions):
                    return override.key, override.model
        return "", self.base

    def for_key(self, key: str) -> Model:
        """The model behind a stored dimension_key (settlement, the trace API)."""
        try:
            return self._by_key[key]
        except KeyError:
            raise UsageError("dimension_key", f"no override of this config has the dimension key {key!r}") from None

    def quote(self, units: Decimal, events: Sequence[Decimal] | None = None) -> Decimal:
        return self.base.quote(units, events)

    def rate_event(self, usage: Usage, quantity: Decimal) -> Rating:
        return self.base.rate_event(usage, quantity)


Pricer = PriceBook


def _compile_price(config: Mapping[str, Any]) -> Model:
    model = _registry()[config["model"]].compile(config)
    limit = config.get("limit")
    if limit is None:
        return model
    return replace(model, limit=Limit(Decimal(limit["units"]), limit["overage"], limit.get("fail", FAIL_OPEN)))


@lru_cache(maxsize=4096)
def _compile_canonical(canonical: str) -> PriceBook:
    config = validate_config(json.loads(canonical))
    ranked = sorted(enumerate(config.get("overrides", ())), key=lambda item: (-len(item[1]["match"]), item[0]))
    overrides = tuple(
        Override(
            key=dimension_key(o["match"]),
            match=tuple((name, frozenset(values)) for name, values in o["match"].items()),
            model=_compile_price(o["price"]),
        )
        for _, o in ranked
    )
    return PriceBook(_compile_price(config), overrides)


def compile_config(config: Mapping[str, Any]) -> PriceBook:
    """Validate and compile once; cached by the config's canonical form (the hot path calls
    this per distinct config, never per event)."""
    return _compile_canonical(_canonical(config))



def _canonical(config: Mapping[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(config: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a config: the identity of a pricing snapshot."""
    return hashlib.sha256(_canonical(config).encode()).hexdigest()
