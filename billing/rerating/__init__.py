"""Re-rating with a diff and single-event reversal over the rated ledger (issue 16):
plan (pure), report (pure), services (lock → read → plan → write; jobs)."""
