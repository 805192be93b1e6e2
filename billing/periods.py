"""Billing periods: the pure date arithmetic lives in aforo.periods (the lowest layer, so the
catalog can tell which periods a backdated subscription will invoice); billing's modules import
it from here, as before."""

from aforo.periods import MONTHLY, WEEKLY, period_for, periods_between, periods_ended, term_applies

__all__ = ["MONTHLY", "WEEKLY", "period_for", "periods_between", "periods_ended", "term_applies"]
