"""The operator admin for prepaid wallets, their ledger, holds and low-balance alerts,
tenant-scoped like every Aforo admin (catalog.admin).

Balances and held amounts are derived from the ledger and are never edited here: money moves
only through the wallet services — "Top up" and "Adjust" forms on a wallet's page
(`wallet_top_up`, `wallet_adjust`) and the "Release selected" action on holds (`hold_release`).
Each money form carries an idempotency key generated once when the form is rendered, so a
double submit (or a resubmit after a timeout) records the movement once. The ledger, holds and
alerts are read-only."""

from . import ledger, wallet  # noqa: F401 - registers the admin classes
