from celery import shared_task

from .enrichment import enrichment_cache_warm as enrichment_cache_warm_service


@shared_task(name="metering.tasks.enrichment_cache_warm", ignore_result=True, expires=25)
def enrichment_cache_warm() -> int:
    """The EntitlementCacheSyncJob (beat, every 30 s): see aforo/celery.py for the cadence."""
    return enrichment_cache_warm_service()


@shared_task(name="metering.tasks.ingest_counts_flush", ignore_result=True, expires=55)
def ingest_counts_flush() -> int:
    """The ingest counts' flush (beat, every 30 s): Redis minute hashes → IngestCount."""
    from .reconciliation.counts import ingest_counts_flush as ingest_counts_flush_service

    return ingest_counts_flush_service()
