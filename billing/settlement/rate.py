"""Rate: a usage line per aggregate (late ones as adjustment lines of their own period), and on
the final run each metric's zero-usage charge once — quote(0): a flat fee, the first tier's flat
fee, a period minimum — which delta rating leaves to settlement (ARCHITECTURE §4.3); prorated by
time in a period the subscription started or ended within (SettlementContext.prorated)."""

from __future__ import annotations

from decimal import Decimal

from billing.rating import compile_config, text
from .context import ZERO, Line, SettlementContext

def _units(value: Decimal) -> str:
    return f"{Decimal(text(value)):,f}"


def run(context: SettlementContext) -> None:
    for aggregate in context.aggregates:
        where = f" ({aggregate.dimension_key})" if aggregate.dimension_key else ""
        late = f", late events of the period from {aggregate.period_start:%Y-%m-%d}" if aggregate.late else ""
        trial = " — Trial usage — free" if aggregate.trial else ""
        context.add(
            Line(
                kind="late_usage" if aggregate.late else "usage",
                description=f"{aggregate.metric_code}{where}: {_units(aggregate.units)} units{trial}{late}",
                amount_unrounded=aggregate.amount, metric_id=aggregate.metric_id, dimension_key=aggregate.dimension_key,
                period_start=aggregate.period_start, units=aggregate.units, event_count=aggregate.event_count,
                rated_from_id=aggregate.rated_from_id, rated_to_id=aggregate.rated_to_id, trial=aggregate.trial,
            )
        )
    bases = 0
    if context.final:
        used = {(a.metric_id, a.dimension_key): a.config for a in context.aggregates if not a.late and not a.trial}
        used = {**{(a.metric_id, a.dimension_key): a.config for a in context.aggregates if not a.late}, **used}
        configs = context.inputs.version_configs
        keys = {**{(metric_id, ""): config for metric_id, config in configs.items()}, **used}
        codes = context.inputs.metric_codes
        prorated = context.proration_text()
        for (metric_id, key), config in sorted(keys.items()):
            base = context.prorated(compile_config(config).for_key(key).quote(ZERO, []))
            if base:  # none for a late-usage part or a period all in trial (not active)
                where = f" ({key})" if key else ""
                context.add(
                    Line(
                        kind="base", description=f"{codes[metric_id]}{where}: base charge for the period{prorated}",
                        amount_unrounded=base, metric_id=metric_id, dimension_key=key,
                        period_start=context.period_start,
                    )
                )
                bases += 1
    context.log("rate", usage_lines=len(context.aggregates), base_lines=bases, charges=context.total())
