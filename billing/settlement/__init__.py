"""Settlement: one subscription's period turned into an invoice (and wallet entries), by a
pipeline of small stages over a SettlementContext, asynchronously, idempotently, traceably.

    QuotaCheck → Rollover → Aggregate → Allowance → Rate → Commit → Discount → Tax → Credit grants → Route → Settle

Each stage is a module with `run(context)`; it reads the context, adds to it and logs what it did
(`context.log(...)`). Settlement reads the rated ledger and the config snapshots the rated
events carry (plus the immutable published version for metrics without usage), never the
enrichment cache.
"""

from .pipeline import SettlementResult, settlement_run

__all__ = ["SettlementResult", "settlement_run"]
