"""Wallet tasks: thin interfaces over wallets.services (the beat schedule is aforo/celery.py)."""

from celery import shared_task
from django.conf import settings

from . import grants, holds


@shared_task(name="wallets.tasks.holds_expire", ignore_result=True, expires=4)
def holds_expire() -> int:
    """The HoldExpiryScheduler (beat, every 5 s): expire active holds past their TTL, giving
    their reservation back, in batches of WALLET_HOLD_EXPIRY_BATCH_SIZE until a batch comes
    back short, at most WALLET_HOLD_EXPIRY_MAX_BATCHES per run (a backlog bigger than that
    is left to the next run, so one run stays short). Idempotent and safe next to commits,
    releases and other runs: the service re-checks every hold under its wallet's lock.
    Returns the number of holds expired."""
    batch_size = settings.WALLET_HOLD_EXPIRY_BATCH_SIZE
    expired = 0
    for _ in range(settings.WALLET_HOLD_EXPIRY_MAX_BATCHES):
        in_batch = holds.holds_expire(batch_size=batch_size)
        expired += in_batch
        if in_batch < batch_size:
            break
    return expired


@shared_task(name="wallets.tasks.credit_grants_expire", ignore_result=True)
def credit_grants_expire() -> int:
    """Beat, every 60 s: expire credit grants past their expires_at (wallets.grants), in batches
    of WALLET_HOLD_EXPIRY_BATCH_SIZE until one comes back short, at most
    WALLET_HOLD_EXPIRY_MAX_BATCHES per run. Idempotent (each grant's expiry entry is keyed).
    Returns the number of grants expired."""
    batch_size = settings.WALLET_HOLD_EXPIRY_BATCH_SIZE
    expired = 0
    for _ in range(settings.WALLET_HOLD_EXPIRY_MAX_BATCHES):
        in_batch = grants.credit_grants_expire(batch_size=batch_size)
        expired += in_batch
        if in_batch < batch_size:
            break
    return expired
