"""The engine's shared pieces: errors, parameter parsing, the model base class, the registry
from a config's `model` to its module, dimension overrides, and the public functions.

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

"block": usage beyond the limit is not to be charged (the plan blocks it; settlement credits
whatever got through, Model.overage_credit); "bill": it is charged as usual and reported as
overage (Model.overage_units). The engine never prices a limit: quote, rate_event and breakdown
are the same with or without one. Not on per-transaction models (percentage): a limit counts
units. A config without `limit` normalises, and hashes, exactly as before limits existed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation, localcontext
from functools import lru_cache
from typing import Any, ClassVar, NamedTuple

from aforo.money import decimal_text

# Enough digits that no product or sum of validated parameters and quantities is ever rounded.
PRECISION = 80
ZERO = Decimal(0)
MAX_PLACES = 12
MAX_PARAMETER = Decimal("1e12")
MAX_UNITS = Decimal("1e26")
DIMENSION_KEY_MAX = 200
KEY_SEPARATORS = frozenset(",=|")  # of a dimension key: "region=eu|uk,tool_name=search"
MAX_OVERRIDES = 100
MAX_EVENTS = 10_000  # transactions in one quote (the pipeline rates one event at a time)
LIMIT_FIELDS = ("units", "overage")
BLOCK, BILL = "block", "bill"
OVERAGES = (BLOCK, BILL)


class RatingError(ValueError):
    """Bad input to the engine; `field` names the offending part (a dotted path such as
    "tiers[2].up_to" or "overrides[0].price.rate")."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ConfigError(RatingError):
    """An invalid pricing config."""


class UsageError(RatingError):
    """Invalid units or events handed to quote()."""


# --- parsing ------------------------------------------------------------------------------


def parse_decimal(
    raw: Any, field: str, *, minimum: Decimal = ZERO, maximum: Decimal = MAX_PARAMETER, error: type[RatingError] = ConfigError
) -> Decimal:
    """A decimal string or an int, finite, within [minimum, maximum], at most 12 places.
    Floats and booleans are refused: a float is already inexact."""
    if isinstance(raw, (bool, float)):
        raise error(field, f'must be a decimal string such as "0.003", not {raw!r} (floats are inexact)')
    try:
        value = Decimal(raw.strip() if isinstance(raw, str) else raw) if isinstance(raw, (int, str, Decimal)) else None
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite():
        raise error(field, f"must be a finite decimal, got {raw!r}")
    if value < minimum:
        raise error(field, f"must be at least {minimum}, got {raw!r}")
    if value > maximum:
        raise error(field, f"must be at most {maximum:,f}, got {raw!r}")
    if value.as_tuple().exponent < -MAX_PLACES:  # type: ignore[operator]
        raise error(field, f"has more than {MAX_PLACES} decimal places")
    return value


def param(config: Mapping[str, Any], name: str, *, default: str | None = None, **limits: Any) -> Decimal:
    """Read parameter `name`; absent or null falls back to `default` (required when None)."""
    raw = config.get(name)
    if raw is None:
        if default is None:
            raise ConfigError(name, "is required")
        return Decimal(default)
    return parse_decimal(raw, name, **limits)


def optional_param(config: Mapping[str, Any], name: str, **limits: Any) -> Decimal | None:
    raw = config.get(name)
    return None if raw is None else parse_decimal(raw, name, **limits)


def reject_unknown(config: Mapping[str, Any], allowed: set[str], model: str) -> None:
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise ConfigError(unknown[0], f"is not a parameter of the {model} model; expected some of {sorted(allowed - {'model'})}")


def text(value: Decimal | None) -> str | None:
    """Normalised decimal text (no exponent, no trailing zeros): what stored configs hold."""
    return None if value is None else decimal_text(value)


@contextmanager
def nested(prefix: str) -> Iterator[None]:
    """Re-raise a ConfigError from inside a nested object with its path prefixed."""
    try:
        yield
    except ConfigError as error:
        raise ConfigError(f"{prefix}.{error.field}", error.message) from None


# --- what a model computes ------------------------------------------------------------------


class Usage(NamedTuple):
    """The running state of one (subscription, metric, dimension, period): units so far, events
    (transactions) so far, and, for percentage, the per-transaction fees before the period
    minimum. Zero usage is Usage()."""

    units: Decimal = ZERO
    events: int = 0
    fees: Decimal = ZERO


class TierDelta(NamedTuple):
    tier: int  # 1-based
    units: Decimal
    amount: Decimal

    def as_dict(self) -> dict[str, Any]:
        return {"tier": self.tier, "units": text(self.units), "amount": text(self.amount)}


class Rating(NamedTuple):
    """One event rated against a running state: the exact delta, the state after it, and
    (tiered models) how the delta falls across tiers."""

    amount: Decimal
    usage: Usage
    tiers: tuple[TierDelta, ...] | None = None


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a quote's breakdown; a breakdown's amounts sum to the quote exactly."""

    description: str
    amount: Decimal
    units: Decimal | None = None
    unit_amount: Decimal | None = None
    flat_amount: Decimal | None = None
    tier: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"description": self.description}
        for name in ("tier", "units", "unit_amount", "flat_amount"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value if name == "tier" else text(value)
        out["amount"] = text(self.amount)
        return out


@dataclass(frozen=True, slots=True)
class Limit:
    """A price's hard usage limit per period: `units`, and what happens beyond them — `overage`
    "block" (not to be charged) or "bill" (charged as usual, reported as overage)."""

    units: Decimal
    overage: str

    def as_dict(self) -> dict[str, Any]:
        return {"units": text(self.units), "overage": self.overage}


@dataclass(frozen=True)
class Model:
    """A compiled pricing model. Subclasses (frozen dataclasses) implement `_quote` and `_lines`
    (and `_rate` when the charge depends on more than the units, like percentage); the public
    methods run them under the engine's precision so no caller can get a rounded result.

    `limit` (keyword-only, so subclasses keep their positional fields) is the price's usage limit
    or None; no pricing method reads it."""

    name: ClassVar[str]
    uses_events: ClassVar[bool] = False  # percentage: priced per transaction
    limit: Limit | None = field(default=None, kw_only=True)

    def quote(self, units: Decimal, events: Sequence[Decimal] | None = None) -> Decimal:
        with localcontext() as ctx:
            ctx.prec = PRECISION
            return self._quote(units, events)

    def lines(self, units: Decimal, events: Sequence[Decimal] | None = None) -> list[Line]:
        with localcontext() as ctx:
            ctx.prec = PRECISION
            return self._lines(units, events)

    def rate_event(self, usage: Usage, quantity: Decimal) -> Rating:
        """Delta rating: the charge of one more event of `quantity` on top of `usage`."""
        with localcontext() as ctx:
            ctx.prec = PRECISION
            return self._rate(usage, quantity)

    def boundaries(self) -> list[Decimal]:
        """Units where the price per unit changes (tier bounds, included units, package edges),
        ascending: what a price preview should show. None for per-transaction models."""
        return []

    def included_units(self) -> Decimal | None:
        """The units the price includes free each period (included_free, a quota, free units, a
        free first tier), or None: what settlement's QuotaCheck and the usage page report."""
        return None

    def overage_units(self, units: Decimal) -> Decimal:
        """The units beyond the limit, max(units − limit.units, 0), whatever its overage; 0
        without a limit."""
        if self.limit is None:
            return ZERO
        with localcontext() as ctx:
            ctx.prec = PRECISION
            return max(units - self.limit.units, ZERO)

    def overage_credit(self, units: Decimal) -> Decimal:
        """What a "block" limit takes back from quote(units): the charge of the units beyond the
        limit, quote(units) − quote(limit.units), exact. Never negative: where a price falls past
        the limit (volume tiers) blocking does not raise the charge, so the credit is 0 and
        quote(units) − credit == min(quote(units), quote(min(units, limit.units))). 0 for "bill",
        without a limit, and within it."""
        if self.limit is None or self.limit.overage != BLOCK or units <= self.limit.units:
            return ZERO
        with localcontext() as ctx:
            ctx.prec = PRECISION
            return max(self._quote(units, None) - self._quote(self.limit.units, None), ZERO)

    def _quote(self, units: Decimal, events: Sequence[Decimal] | None) -> Decimal:
        raise NotImplementedError

    def _lines(self, units: Decimal, events: Sequence[Decimal] | None) -> list[Line]:
        raise NotImplementedError

    def _rate(self, usage: Usage, quantity: Decimal) -> Rating:
        after = usage.units + quantity
        amount = self._quote(after, None) - self._quote(usage.units, None)
        return Rating(amount, Usage(after, usage.events + 1, usage.fees))


class TieredModel(Model):
    """graduated and volume: a charge per tier, so a rated event records its tier breakdown."""

    def included_units(self) -> Decimal | None:
        up_to, unit_amount, flat_amount = self.tiers[0]  # type: ignore[attr-defined]
        return up_to if up_to is not None and not unit_amount and not flat_amount else None  # a free first tier

    def _tier_totals(self, units: Decimal) -> list[tuple[int, Decimal, Decimal]]:
        """(tier number, units in the tier, amount of the tier incl. its flat fee) per tier charged."""
        raise NotImplementedError

    def _quote(self, units: Decimal, events: Sequence[Decimal] | None) -> Decimal:
        return sum((amount for _, _, amount in self._tier_totals(units)), ZERO)

    def _rate(self, usage: Usage, quantity: Decimal) -> Rating:
        after = usage.units + quantity
        delta: dict[int, list[Decimal]] = {}
        for tier, units, amount in self._tier_totals(after):
            delta[tier] = [units, amount]
        for tier, units, amount in self._tier_totals(usage.units):
            entry = delta.setdefault(tier, [ZERO, ZERO])
            entry[0] -= units
            entry[1] -= amount
        tiers = tuple(TierDelta(t, u, a) for t, (u, a) in sorted(delta.items()) if u or a)
        return Rating(sum((t.amount for t in tiers), ZERO), Usage(after, usage.events + 1, usage.fees), tiers)


# --- the registry and dimension overrides ----------------------------------------------------


def _registry() -> dict[str, Any]:
    from . import flat, included_quota, package, per_unit, percentage, tiered

    return {
        "per_unit": per_unit,
        "flat": flat,
        "percentage": percentage,
        "included_quota": included_quota,
        "graduated": tiered.graduated,
        "volume": tiered.volume,
        "package": package,
    }


MODELS = ("per_unit", "flat", "percentage", "included_quota", "graduated", "volume", "package")


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
    return {"units": text(units), "overage": overage}


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
    return model if limit is None else replace(model, limit=Limit(Decimal(limit["units"]), limit["overage"]))


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


# --- the public entry points -----------------------------------------------------------------


def _units(units: Decimal | str | int) -> Decimal:
    return parse_decimal(units, "units", maximum=MAX_UNITS, error=UsageError)


def _events(units: Decimal | None, events: Sequence[Decimal | str | int] | None) -> list[Decimal] | None:
    """Parsed transaction amounts, which must sum to `units` (unless units is None)."""
    if events is None:
        return None
    if isinstance(events, (str, bytes)) or not isinstance(events, Sequence):
        raise UsageError("events", "must be a list of transaction amounts")
    if len(events) > MAX_EVENTS:
        raise UsageError("events", f"at most {MAX_EVENTS:,} transactions per quote")
    parsed = [parse_decimal(e, f"events[{i}]", maximum=MAX_UNITS, error=UsageError) for i, e in enumerate(events)]
    if units is None:
        return parsed
    with localcontext() as ctx:
        ctx.prec = PRECISION
        total = sum(parsed, ZERO)
    if total != units:
        raise UsageError("units", f"must equal the sum of events ({text(total)}), got {text(units)}")
    return parsed


def _model(config: Mapping[str, Any], dimensions: Mapping[str, Any] | None) -> tuple[str, Model]:
    return compile_config(config).select(dimensions)


def quote(
    config: Mapping[str, Any],
    units: Decimal | str | int,
    events: Sequence[Decimal | str | int] | None = None,
    *,
    dimensions: Mapping[str, Any] | None = None,
) -> Decimal:
    """The full, exact charge for one billing period of one metric at `units` of usage.
    For percentage, `events` are the transaction amounts in arrival order (they must sum to
    `units`; without them `units` is one transaction). `dimensions` picks an override."""
    parsed_units = _units(units)
    _, model = _model(config, dimensions)
    return model.quote(parsed_units, _events(parsed_units, events))


def breakdown(
    config: Mapping[str, Any],
    units: Decimal | str | int,
    events: Sequence[Decimal | str | int] | None = None,
    *,
    dimensions: Mapping[str, Any] | None = None,
) -> tuple[str, list[Line]]:
    """(dimension_key, lines) of the same quote: per tier, per package or per transaction;
    the lines' amounts sum to quote(...) exactly."""
    parsed_units = _units(units)
    key, model = _model(config, dimensions)
    return key, model.lines(parsed_units, _events(parsed_units, events))


@dataclass(frozen=True, slots=True)
class Quote:
    """A quote explained: what the API and the `quote` command show."""

    amount: Decimal
    units: Decimal
    model: str  # of the price that applied: the base config's or the override's
    dimension_key: str
    lines: list[Line]
    limit: Limit | None = None  # of that price; the amount is the same with or without it


def explain(
    config: Mapping[str, Any],
    units: Decimal | str | int | None = None,
    events: Sequence[Decimal | str | int] | None = None,
    *,
    dimensions: Mapping[str, Any] | None = None,
) -> Quote:
    """quote() and breakdown() together, for a person: `units` may be left out when `events`
    are given (they are then the events' exact sum)."""
    if units is None:
        if events is None:
            raise UsageError("units", "is required unless events (the transaction amounts) are given")
        parsed_events = _events(None, events)
        with localcontext() as ctx:
            ctx.prec = PRECISION
            parsed_units = sum(parsed_events, ZERO)  # type: ignore[arg-type]
    else:
        parsed_units = _units(units)
        parsed_events = _events(parsed_units, events)
    key, model = _model(config, dimensions)
    return Quote(
        amount=model.quote(parsed_units, parsed_events), units=parsed_units, model=model.name, dimension_key=key,
        lines=model.lines(parsed_units, parsed_events), limit=model.limit,
    )


def _canonical(config: Mapping[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(config: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a config: the identity of a pricing snapshot."""
    return hashlib.sha256(_canonical(config).encode()).hexdigest()
