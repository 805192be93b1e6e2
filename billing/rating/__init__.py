"""The rating engine: PURE Python over Decimal. No Django, no database, no I/O.

    quote(config, units, events=None, *, dimensions=None) -> Decimal   the full charge for one period, exact
    breakdown(config, units, events=None, *, dimensions=None)          (dimension_key, lines) of that quote
    explain(config, units=None, events=None, *, dimensions=None)       Quote: amount, units, model, key, lines, limit
    validate_config(config) -> config        normalised, or ConfigError naming the field
    compile_config(config) -> PriceBook      parsed once; .select(dimensions) -> (dimension_key, Model)
    Model.rate_event(usage, quantity) -> Rating   delta rating of one event against a running state
    Model.limit -> Limit | None              a price's usage limit {"units", "overage": block|bill}
    Model.overage_units(units) / Model.overage_credit(units) -> Decimal   beyond the limit; what "block" does not charge
    Model.rate_limited(usage, quantity) -> (Rating, blocked)   delta rating under a "block" limit (the planner's)
    config_hash(config) -> str               stable identity of a config snapshot

Models: per_unit, flat, percentage, included_quota, graduated, volume, package (see each
module). Everything else in Aforo prices through these functions; nothing else knows a model.
"""

from .engine import Quote, breakdown, explain, quote
from .model import Model
from .overrides import PriceBook, Pricer, compile_config, config_hash, dimension_key, validate_config
from .params import ConfigError, RatingError, UsageError, text
from .registry import MODELS
from .types import Limit, Line, Rating, TierDelta, Usage

__all__ = [
    "MODELS", "ConfigError", "Limit", "Line", "Model", "PriceBook", "Pricer", "Quote", "Rating", "RatingError", "TierDelta",
    "Usage", "UsageError", "breakdown", "compile_config", "config_hash", "dimension_key", "explain", "quote", "text",
    "validate_config",
]
