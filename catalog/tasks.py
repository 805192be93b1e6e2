"""Catalog tasks: thin interfaces over catalog services (the beat schedule is aforo/celery.py)."""

from celery import shared_task

from .terms import subscription_terms_sync


@shared_task(name="catalog.tasks.subscription_terms_sync", ignore_result=True, expires=55)
def terms_sync() -> int:
    """Copy onto each subscription the terms version that has come into effect (beat, every
    60 s). Idempotent: each subscription is re-checked under its row lock. Returns how many
    subscriptions were updated."""
    return subscription_terms_sync()
