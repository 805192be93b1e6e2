"""The operator admin for prepaid wallets, their ledger, holds and low-balance alerts,
tenant-scoped like every Aforo admin (catalog.admin).

Balances and held amounts are derived from the ledger and are never edited here: money moves
only through the wallet services — "Top up" and "Adjust" forms on a wallet's page
(`wallet_top_up`, `wallet_adjust`) and the "Release selected" action on holds (`hold_release`).
Each money form carries an idempotency key generated once when the form is rendered, so a
double submit (or a resubmit after a timeout) records the movement once; the services refuse an
amount finer than the wallet currency's minor unit and a currency outside ISO 4217, shown as form
errors. Holds have no commit action here (commits come from the API, where charging more than a
hold reserves needs an explicit allow_over_capture). The ledger, holds and alerts are read-only;
credit grants too, but for "Void selected" (with its reason); a wallet's page lists its grants."""

from . import grants, ledger, wallet  # noqa: F401 - registers the admin classes
