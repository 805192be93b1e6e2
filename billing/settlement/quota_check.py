"""QuotaCheck: the period's usage against what the plan includes (included_free, quota, free
units, a free first tier) and against its hard limits, per metric and dimension key, recorded
on the run for the operator.

Usage is the period's units up to the watermark (`context.period_units`: what its interim
invoices billed plus what this run settles), priced by the config its latest event was rated
with (a key without events this run: the version in force). A hard limit (`"limit": {"units",
"overage"}` in the price) whose overage is "bill" is reported (units over, charged as usual);
one whose overage is "block" is reported too, and needs no line: the consumer rated the units
past it at zero as they came (billing.rating.Model.rate_limited; the rated events carry them as
`blocked_units`), so the period's usage lines already charge quote(used) − overage_credit(used)
and every wallet, running total and interim invoice agreed with that at every moment."""

from __future__ import annotations

from decimal import Decimal

from billing.rating import Model, compile_config, text

from .context import SettlementContext



def _model(config: dict | None, key: str) -> Model | None:
    if config is None:
        return None
    try:
        return compile_config(config).for_key(key)
    except ValueError:
        return None  # a key of another version's overrides


def run(context: SettlementContext) -> None:
    configs = context.inputs.version_configs
    codes = context.inputs.metric_codes
    # Every key the period has usage in: its running totals (rated so far) and what is settled.
    keys = sorted({(t.metric_id, t.dimension_key) for t in context.inputs.totals} | context.period_units.keys())
    limits = []
    for metric_id, key in keys:
        model = _model(context.key_configs.get((metric_id, key)) or configs.get(metric_id), key)
        if model is None:
            continue
        used = context.period_units.get((metric_id, key), Decimal(0))
        code = codes.get(metric_id, str(metric_id))
        included = model.included_units()
        if included is not None:
            context.quota.append(
                {"metric": code, "dimension_key": key, "included": text(included), "used": text(used), "over": used > included}
            )
        if model.limit is None:
            continue
        over = model.overage_units(used)
        limit = {
            "metric": code, "dimension_key": key, "limit": text(model.limit.units), "overage": model.limit.overage,
            "used": text(used), "over": text(over),
        }
        if model.blocks() and over:
            limit["blocked"] = text(over)  # rated at zero in real time: nothing to take back
        limits.append(limit)
    context.log("quota_check", allowances=context.quota, limits=limits)
