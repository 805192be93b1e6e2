"""The Celery app and the ONE beat schedule of Aforo. Every periodic task is declared here,
with the reason for its cadence."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aforo.settings.dev")

app = Celery("aforo")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

app.conf.beat_schedule = {
    # The ingest API's accepted counts (metering.reconciliation.counts): Redis minute hashes →
    # IngestCount. Minutes are flushed 2 minutes after they close (a request counts in the minute
    # it started); 30 s keeps Redis holding a few minutes at most. The reconciliation report
    # flushes on its own before reading, so its figures never wait for this.
    "ingest-counts-flush": {
        "task": "metering.tasks.ingest_counts_flush",
        "schedule": 30.0,
    },
    # The EntitlementCacheSyncJob: rebuild every active API key's billing context in Redis so
    # the consumer's per-batch MGET hits. 30 s keeps entries far inside their 10-minute TTL;
    # correctness after catalog edits does not depend on it (edits bump the catalog generation).
    "enrichment-cache-warm": {
        "task": "metering.tasks.enrichment_cache_warm",
        "schedule": 30.0,
    },
    # The HoldExpiryScheduler: expire holds past their TTL and give their reservation back.
    # Until swept, an expired hold still lowers the available balance (commits, releases and
    # debits treat it as expired on their own), so the cadence bounds how long money stays
    # wrongly reserved: 5 s, under the TTLs of metered sessions (seconds to minutes) and about
    # two polls of the customer page. A run is bounded (batches × batch size, see settings)
    # and expires after 4 s, so runs never pile up behind a slow worker.
    "wallet-holds-expire": {
        "task": "wallets.tasks.holds_expire",
        "schedule": 5.0,
    },
    # Credit grant expiry: a grant past its expires_at gets its `grant_expiry` ledger entry
    # (dated the expiry itself) and leaves the active set. Consumption never waits for it (from
    # expires_at on no debit draws on the grant, swept or not), so the cadence only bounds how
    # long the balance still shows expired credit: 60 s. Bounded per run, expires after 55 s.
    "wallet-credit-grants-expire": {
        "task": "wallets.tasks.credit_grants_expire",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Budget leases expire like holds: every 5 s (a lease reserves units others cannot use until
    # it expires; reads and writes of a lease also expire it when due), expiring after 4 s.
    "billing-leases-expire": {
        "task": "billing.tasks.leases_expire",
        "schedule": 5.0,
    },
    # The webhook outbox sweep: deliveries whose attempt is due but not queued — the broker was
    # down when their event committed, or a worker died holding one — are queued again.
    "webhook-deliveries-sweep": {
        "task": "notify.tasks.webhook_deliveries_sweep",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # The settlement sweep: settle every period that is over (a canceled subscription's last
    # partial period too) and has no final invoice, one settle_customer task per customer. Its
    # one query is cheap, so 60 s issues invoices within about a minute of a period being over
    # (its end plus SETTLEMENT_WATERMARK_LAG_S, so that its last rated events are under the
    # watermark) and doubles as the retry of a failed settlement. Safe if two runs overlap: a run is once per
    # period (unique constraint + subscription lock). Threshold invoices are not swept: the
    # rating hot path enqueues them as the running totals cross the threshold.
    "settlement-sweep": {
        "task": "billing.tasks.settlement_sweep",
        "schedule": 60.0,
    },
    # The draft sweep: finalize the invoices whose grace period (Subscription.invoice_grace_hours,
    # whole hours) is over. 60 s makes a draft final within a minute of its grace, far inside an
    # hour; due dates count from the actual finalization. Safe if two runs overlap: each invoice
    # is re-checked under its row lock. Drafts are rare (grace 0 finalizes at settlement).
    "invoice-drafts-finalize": {
        "task": "billing.tasks.invoices_finalize_drafts",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Subscription terms versions (catalog.terms) added for a later instant: copy each onto its
    # subscription once in effect, for what reads the terms in real time (threshold invoices,
    # spend alerts). Settlement does not depend on it (it reads the version governing the
    # period), so 60 s is plenty; one indexed query when nothing is due.
    "subscription-terms-sync": {
        "task": "catalog.tasks.subscription_terms_sync",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # The trial sweep: record the conversion of trials whose end date has passed (the row, the
    # subscription's trial_converted_at, the webhook). 60 s: the conversion instant is the end
    # date itself, whatever the lag — events after it are billed by their timestamp before the
    # sweep runs — so the sweep's cadence only delays the record and the webhook.
    "trial-conversion-sweep": {
        "task": "billing.tasks.trial_conversion_sweep",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
}
