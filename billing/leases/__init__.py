"""Budget leases: a gateway node leases a slice of a metric's hard limit for a TTL, decides
locally against it, reports what it used and renews or returns the rest (issue 13 §1).

plan.py (pure accounting) · inputs.py (request validation) · services.py (grant, renew, return,
expire) · attribution.py (the rating batch's share) · counters.py (reservations in Redis)."""
