"""Commit: the minimum-spend commitment (a true-up line on the final run when the period's
charges fall below it) and the maximum-spend cap (a negative line capping them, or an alert
only, per the subscription's spend_cap_action). The period's charges include its interim
invoices'."""

from __future__ import annotations

from .context import ZERO, Line, SettlementContext

# Net of what Allowance took back (free units): what is charged. ("overage" lines, a take-back of
# units past a "block" limit, are those of invoices settled before such units were rated at zero.)
CHARGES = ("usage", "late_usage", "base", "overage", "allowance")


def run(context: SettlementContext) -> None:
    subscription = context.subscription
    charges = context.total(*CHARGES) + context.previously_invoiced
    done: dict = {"charges": charges}
    if context.final and subscription.min_commitment is not None and charges < subscription.min_commitment:
        true_up = subscription.min_commitment - charges
        context.add(Line(kind="commitment", description=f"Minimum commitment {subscription.min_commitment}: true-up", amount_unrounded=true_up))
        done["true_up"] = true_up
    if subscription.spend_cap is not None and charges > subscription.spend_cap:
        over = min(charges - subscription.spend_cap, context.total(*CHARGES))
        if subscription.spend_cap_action == "cap" and over > ZERO:
            context.add(Line(kind="cap", description=f"Spend cap {subscription.spend_cap}", amount_unrounded=-over))
            done["capped"] = over
        else:
            done["cap_alert"] = f"charges {charges} exceed the spend cap {subscription.spend_cap}"
    context.log("commit", **done)
