"""The rating engine: PURE Python over Decimal. No Django, no database, no I/O.

    quote(config, units, events=None) -> Decimal   the full charge for one period, exact
    validate_config(config) -> config               normalised, or ConfigError naming the field
    compile_config(config) -> Pricer                parsed once, quoted many times (hot path)
    config_hash(config) -> str                      stable identity of a config snapshot

Everything else in Aforo prices through these functions; nothing else knows a pricing model.
"""

from .engine import ConfigError, Pricer, compile_config, config_hash, quote, validate_config

__all__ = ["ConfigError", "Pricer", "compile_config", "config_hash", "quote", "validate_config"]
