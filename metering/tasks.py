from celery import shared_task

from .enrichment import enrichment_cache_warm as enrichment_cache_warm_service


@shared_task(name="metering.tasks.enrichment_cache_warm", ignore_result=True, expires=25)
def enrichment_cache_warm() -> int:
    """The EntitlementCacheSyncJob (beat, every 30 s): see aforo/celery.py for the cadence."""
    return enrichment_cache_warm_service()
