"""The demo: a tenant with customers, prices, keys and wallets (seed), months of usage rated and
settled through the real pipelines (history), and the events simulate_traffic sends (events).
Part of the project package's composition root: it may import every app (see .importlinter)."""
