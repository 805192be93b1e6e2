"""Reconciliation: proof that no usage event was lost between the ingest API and the ledgers.

    counts.py   what each side counted: the ingest API (a Redis minute hash, flushed to
                IngestCount), the consumer (ConsumedCount, in its batch transaction), the
                dead letters (DeadLetter, once per Kafka position)
    topic.py    reading the usage topic over a time window (names the ids behind a difference)
    report.py   the report: per customer reference and period, accepted − (persisted +
                duplicates + dead-lettered + in flight), which must be 0
"""
