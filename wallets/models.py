"""Wallets, the append-only wallet ledger and escrow holds arrive with the prepaid-wallets
issue; the app exists now so the project layout is the final one."""
