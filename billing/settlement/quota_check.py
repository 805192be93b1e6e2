"""QuotaCheck: the period's usage (its running totals) against the allowances the plan includes
(included_free, quota, free units, a free first tier), recorded on the run for the operator."""

from __future__ import annotations

from decimal import Decimal

from billing.rating import Model, compile_config

from ..models import RunningTotal
from .context import SettlementContext
from .rate import version_configs


def _included(model: Model) -> Decimal | None:
    for name in ("included_free", "free_units"):
        value = getattr(model, name, None)
        if value:
            return value
    tiers = getattr(model, "tiers", None)
    if tiers and tiers[0][0] is not None and not tiers[0][1] and not tiers[0][2]:
        return tiers[0][0]  # a free first tier
    return None


def run(context: SettlementContext) -> None:
    configs = version_configs(context)
    totals = RunningTotal.objects.filter(
        subscription=context.subscription, period_start=context.period_start
    ).select_related("metric")
    for total in totals:
        config = configs.get(total.metric_id)
        if config is None:
            continue
        try:
            model = compile_config(config).for_key(total.dimension_key)
        except ValueError:
            continue  # a key of another version's overrides
        included = _included(model)
        if included is not None:
            context.quota.append(
                {
                    "metric": total.metric.code, "dimension_key": total.dimension_key, "included": str(included),
                    "used": str(total.units), "over": total.units > included,
                }
            )
    context.log("quota_check", allowances=context.quota)
