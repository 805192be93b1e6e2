"""billing's models by area: the rated ledger, running totals and hourly rollups (ledger),
settlement's records (settlement), the commercial terms settlement applies (terms), free-unit
grants (grants)."""

from .credit_notes import CreditNote, CreditNoteCounter
from .grants import AllowanceGrant, RolloverGrant, RolloverPolicy
from .leases import Lease
from .replay import ReplayItem, ReplayRun
from .rerating import RatingCorrection
from .ledger import PricingSnapshot, RatedEvent, RunningTotal, UsageRollup
from .settlement import Invoice, InvoiceCounter, InvoiceLine, SettlementRun
from .terms import Coupon, CouponRedemption, Discount, TaxRate
from .trials import TrialConversion, TrialUsage

__all__ = [
    "AllowanceGrant", "Coupon", "CouponRedemption", "CreditNote", "CreditNoteCounter", "Discount", "Invoice", "InvoiceCounter", "InvoiceLine", "Lease", "PricingSnapshot", "RatedEvent", "RatingCorrection",
    "ReplayItem", "ReplayRun",
    "RolloverGrant", "RolloverPolicy", "RunningTotal", "SettlementRun", "TaxRate", "TrialConversion", "TrialUsage",
    "UsageRollup",
]
