from celery import shared_task

from .services import _enqueue, webhook_deliveries_due, webhook_delivery_attempt


@shared_task(name="notify.tasks.webhook_deliver", ignore_result=True)
def webhook_deliver(delivery_id: int) -> None:
    """One attempt; the next one is scheduled with its backoff (notify.services)."""
    delay = webhook_delivery_attempt(delivery_id=delivery_id)
    if delay is not None:
        _enqueue([delivery_id], countdown=delay)


@shared_task(name="notify.tasks.webhook_deliveries_sweep", ignore_result=True)
def webhook_deliveries_sweep() -> int:
    """Beat, every minute: queue deliveries whose attempt was never queued or was lost."""
    return webhook_deliveries_due()
