"""Invoices after settlement: the status lifecycle (lifecycle.py, a pure table of allowed
moves), its writes under the invoice's row lock (services.py), credit notes for voids
(credit_notes.py; the void itself is billing.invoicing), the lifecycle's webhook events
(webhooks.py) and the invoice as CSV (exports.py)."""
