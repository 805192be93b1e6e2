"""Settlement tasks: thin interfaces over billing.cadence and the settlement pipeline (the beat
schedule is aforo/celery.py). Every one is idempotent: a settlement run happens once per
period (unique constraint + the subscription's row lock), so a task run twice, or two sweeps
at once, settle nothing twice."""

from celery import shared_task
from django.utils import timezone

from .cadence import customer_settle_due, customers_due
from .models import SettlementRun
from .settlement import settlement_run
from .trials.services import trials_due_convert


@shared_task(name="billing.tasks.settlement_sweep", ignore_result=True, expires=55)
def settlement_sweep() -> int:
    """The settlement sweep (beat, every 60 s): one query finds the customers with a due period
    (ended, no final run; a canceled subscription's last partial period too) and fans out one
    settle_customer task each. Returns the number of customers enqueued."""
    customer_ids = customers_due(now=timezone.now())
    for customer_id in customer_ids:
        settle_customer.delay(customer_id)
    return len(customer_ids)


@shared_task(name="billing.tasks.settle_customer", ignore_result=True)
def settle_customer(customer_id: int) -> int:
    """Settle the customer's due periods, oldest first. No retry policy of its own: what fails
    stays due and the next sweep (60 s) enqueues it again. Returns the invoices created."""
    return sum(1 for result in customer_settle_due(customer_id=customer_id, now=timezone.now()) if result.created)


@shared_task(name="billing.tasks.settle_interim", ignore_result=True)
def settle_interim(subscription_id: int) -> int | None:
    """A threshold invoice for the subscription's current period, enqueued by the rating hot path
    when its accrued charges reached invoice_threshold. The pipeline re-checks the threshold under
    the subscription's lock and does nothing when it no longer holds. Returns the invoice id."""
    result = settlement_run(subscription_id=subscription_id, at=timezone.now(), kind=SettlementRun.Kind.INTERIM)
    return None if result.invoice is None else result.invoice.pk


@shared_task(name="billing.tasks.leases_expire", ignore_result=True, expires=4)
def leases_expire() -> int:
    """The lease expiry sweep (beat, every 5 s): expire active budget leases past their expiry,
    in batches of 500 until one comes back short, at most 20 per run (a bigger backlog is the
    next run's). Idempotent and safe next to renewals and returns: the service re-checks each
    lease under its subscription's lock. Returns the leases expired."""
    from .leases.services import leases_expire as expire  # the services import the catalog resolver

    expired = 0
    for _ in range(20):
        in_batch = expire(batch_size=500)
        expired += in_batch
        if in_batch < 500:
            break
    return expired


@shared_task(name="billing.tasks.invoices_finalize_drafts", ignore_result=True, expires=55)
def invoices_finalize_drafts() -> int:
    """The draft sweep (beat, every 60 s): finalize the draft invoices whose grace period is over
    (billing.invoices.services.invoices_finalize_due), in batches of 500 until one comes back
    short, at most 20 per run. Each invoice is re-checked under its row lock, so a run next to
    an on-demand finalize or a void does nothing twice. Returns the invoices finalized."""
    from .invoices.services import invoices_finalize_due

    finalized = 0
    for _ in range(20):
        in_batch = invoices_finalize_due(now=timezone.now(), batch_size=500)
        finalized += in_batch
        if in_batch < 500:
            break
    return finalized


@shared_task(name="billing.tasks.trial_conversion_sweep", ignore_result=True, expires=55)
def trial_conversion_sweep() -> int:
    """The trial sweep (beat, every 60 s): convert every trial whose end date has passed, at that
    date (billing.trials.services.trials_due_convert; idempotent). Returns how many it converted."""
    return trials_due_convert(now=timezone.now())


@shared_task(name="billing.tasks.replay_run", ignore_result=True)
def replay_run(run_id: int) -> str:
    """Run a pending replay run (POST /api/v1/replays, the admin). No retry policy: a failed run
    keeps its error and a new run replays what it did not (ReplayItems make that safe). Returns
    the run's status."""
    from .replay.services import replay_run_execute

    return replay_run_execute(run_id=run_id).status


@shared_task(name="billing.tasks.rerating_job", ignore_result=True)
def rerating_job(job_id: int) -> str:
    """Run a pending re-rating job (POST /api/v1/rerating-jobs, the admin). No retry policy: a
    failed job wrote nothing (one transaction) and keeps its error; a new job does what it did
    not. Returns the job's status."""
    from .rerating.services import rerating_job_execute

    return rerating_job_execute(job_id=job_id).status
