"""Webhooks: endpoints, events, signed deliveries with retries.

`webhook_event_emit` is what the apps call when something happened (an invoice finalized, a hold
expired, a wallet crossed a low-balance threshold): inside their transaction it records one
delivery per endpoint that wants the event — once per (endpoint, event id), whatever the retries
of the caller — and after the commit enqueues each on Celery (notify.tasks.webhook_deliver).
`webhook_delivery_attempt` POSTs the signed JSON; a 2xx ends it, anything else (or no answer
within WEBHOOK_TIMEOUT_S) schedules the next attempt after min(30 s × 2^(n−1), 1 h) while the
event is younger than WEBHOOK_RETRY_WINDOW_S (a day) and WEBHOOK_MAX_ATTEMPTS allows, then marks
it failed. Every attempt's response code, latency and error are logged on the delivery; the
admin and the API can resend any delivery (same event id: receivers deduplicate on it)."""

from __future__ import annotations

import logging
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson
import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from aforo.exceptions import ApiError

from .hosts import literal_host_refused, resolved_host_refused
from .models import EVENT_TYPES, WebhookDelivery, WebhookEndpoint
from .signing import HEADER, signature_header

logger = logging.getLogger(__name__)
ROTATION_OVERLAP = timedelta(hours=24)
_URL = URLValidator(schemes=["http", "https"])


def _secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def webhook_url_check(url: Any) -> str:
    """An http(s) URL Django's URLValidator accepts (a host with a domain, localhost or an IP), ≤ 500 characters."""
    problem = ApiError(code="validation_error", field="url", message="url: an http(s) URL of at most 500 characters.")
    if not isinstance(url, str) or len(url) > 500 or not url.isprintable():
        raise problem
    try:
        _URL(url)
    except ValidationError:
        raise problem from None
    refused = literal_host_refused(url)
    if refused:
        raise ApiError(code="validation_error", field="url", message=f"url: webhooks go to public hosts only; {refused}.")
    return url


def webhook_event_types_check(value: Any) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ApiError(
            code="validation_error", field="event_types",
            message=f'event_types: a non-empty list of {list(EVENT_TYPES)}, or ["*"] for all.',
        )
    unknown = sorted(set(value) - set(EVENT_TYPES) - {"*"})
    if unknown:
        raise ApiError(
            code="validation_error", field="event_types",
            message=f"event_types: {unknown[0][:60]!r} is not an event type; expected {list(EVENT_TYPES)} or \"*\".",
        )
    return sorted(set(value))


def webhook_endpoint_create(*, tenant_id: int, url: Any, event_types: Any, description: str = "") -> WebhookEndpoint:
    return WebhookEndpoint.objects.create(
        tenant_id=tenant_id, url=webhook_url_check(url), event_types=webhook_event_types_check(event_types),
        description=description[:200], secret=_secret(),
    )


def webhook_secret_rotate(*, endpoint: WebhookEndpoint, now: datetime | None = None) -> WebhookEndpoint:
    """A new secret; the old one keeps signing (a second v1=) for ROTATION_OVERLAP."""
    now = now or timezone.now()
    endpoint.previous_secret, endpoint.secret = endpoint.secret, _secret()
    endpoint.previous_secret_expires_at = now + ROTATION_OVERLAP
    endpoint.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at"])
    return endpoint


def webhook_event_emit(
    *, tenant_id: int, event_type: str, event_id: str, data: dict[str, Any], sender: InlineSender | None = None
) -> int:
    """Record the event's deliveries (inside the caller's transaction) and send them after it
    commits — by a Celery worker, or by `sender`'s threads in this process (the first attempt;
    retries go to Celery). Idempotent per (endpoint, event id). Returns how many deliveries are new."""
    assert event_type in EVENT_TYPES, event_type
    endpoints = [e for e in WebhookEndpoint.objects.filter(tenant_id=tenant_id, is_active=True) if e.wants(event_type)]
    if not endpoints:
        return 0
    now = timezone.now()
    payload = {"id": event_id, "type": event_type, "created": now.isoformat().replace("+00:00", "Z"), "data": data}
    existing = set(
        WebhookDelivery.objects.filter(endpoint__in=endpoints, event_id=event_id).values_list("endpoint_id", flat=True)
    )
    created = WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(tenant_id=tenant_id, endpoint=e, event_id=event_id, event_type=event_type, payload=payload,
                            created_at=now)
            for e in endpoints
            if e.pk not in existing
        ],
        ignore_conflicts=True,
    )
    ids = list(
        WebhookDelivery.objects.filter(
            endpoint__in=[d.endpoint_id for d in created], event_id=event_id, attempts=0, status=WebhookDelivery.Status.PENDING
        ).values_list("id", flat=True)
    )
    # robust: the event's transaction has committed; a broker that refuses the task must not fail
    # the caller (the usage consumer, a settlement) — the delivery is recorded, and the sweep
    # (webhook_deliveries_due) queues it again.
    transaction.on_commit(lambda: (sender.submit if sender is not None else _enqueue)(ids), robust=True)
    return len(ids)


class InlineSender:
    """First attempts made by a few threads of the emitting process (the alerts consumer), not
    by a Celery worker: an alert reaches its endpoint without a hop through the task broker and
    a worker's queue, which under load was most of its latency (bench/alert_latency.py). The
    attempt is the same (webhook_delivery_attempt: locked, idempotent); a failed one schedules
    its retry on Celery; a process that dies with attempts queued leaves them to the sweep
    (webhook_deliveries_due), as a lost Celery task would."""

    def __init__(self, threads: int = 4) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="webhook")

    def submit(self, delivery_ids: Sequence[int]) -> None:
        for delivery_id in delivery_ids:
            self._pool.submit(self._attempt, delivery_id)

    @staticmethod
    def _attempt(delivery_id: int) -> None:
        try:
            delay = webhook_delivery_attempt(delivery_id=delivery_id)
            if delay is not None:
                _enqueue([delivery_id], countdown=delay)
        except Exception:  # noqa: BLE001 — the sweep queues it again
            logger.exception("webhook delivery %s: the inline attempt failed", delivery_id)
        finally:
            connection.close()  # alerts are rare: a connection an attempt, none left open by an idle thread

    def close(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait)


def _enqueue(delivery_ids: Sequence[int], *, countdown: float = 0) -> None:
    from .tasks import webhook_deliver  # the task module imports this one

    for delivery_id in delivery_ids:
        webhook_deliver.apply_async(args=[delivery_id], countdown=countdown)


SWEEP_GRACE = timedelta(minutes=2)


def webhook_deliveries_due(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Queue the deliveries whose attempt is overdue by more than SWEEP_GRACE (never queued, or
    their queued attempt was lost): pending ones created before that, retrying ones due before
    that. An attempt is a no-op unless its delivery is still pending or retrying, so a delivery
    queued twice is sent once. Returns how many were queued."""
    now = now or timezone.now()
    cutoff = now - SWEEP_GRACE
    due = list(
        WebhookDelivery.objects.filter(
            Q(status=WebhookDelivery.Status.PENDING, created_at__lt=cutoff)
            | Q(status=WebhookDelivery.Status.RETRYING, next_attempt_at__lt=cutoff)
        ).order_by("id").values_list("id", flat=True)[:limit]
    )
    _enqueue(due)
    return len(due)


def retry_delay_s(attempts: int) -> int:
    """Seconds before the next attempt after `attempts` failed ones: 30, 60, 120, … capped at an hour."""
    return min(30 * 2 ** (attempts - 1), 3600)


def webhook_delivery_attempt(*, delivery_id: int) -> float | None:
    """One attempt at a delivery (no-op unless it is pending or retrying). Returns the seconds
    until the next attempt, or None when there is none (delivered, given up, or not due)."""
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("endpoint")
            .filter(pk=delivery_id, status__in=[WebhookDelivery.Status.PENDING, WebhookDelivery.Status.RETRYING])
            .first()
        )
        if delivery is None:
            return None
        endpoint = delivery.endpoint
        body = orjson.dumps(delivery.payload)
        now = timezone.now()
        live = [endpoint.secret] + (
            [endpoint.previous_secret]
            if endpoint.previous_secret and endpoint.previous_secret_expires_at and endpoint.previous_secret_expires_at > now
            else []
        )
        headers = {
            "Content-Type": "application/json", "User-Agent": "Aforo-Webhooks/1",
            HEADER: signature_header(body, secrets=live, timestamp=int(now.timestamp())),
            "Aforo-Event-Id": delivery.event_id, "Aforo-Event-Type": delivery.event_type,
        }
        began = time.perf_counter()
        status, error = None, ""
        refused = resolved_host_refused(endpoint.url)
        if refused:
            error = f"refused: {refused}"[:300]
        else:
            try:
                response = requests.post(endpoint.url, data=body, headers=headers, timeout=settings.WEBHOOK_TIMEOUT_S,
                                         allow_redirects=False)
                status = response.status_code
                if not 200 <= status < 300:
                    error = f"HTTP {status}"
            except requests.RequestException as exc:
                error = f"{type(exc).__name__}: {exc}"[:300]
        delivery.attempts += 1
        delivery.latency_ms = int((time.perf_counter() - began) * 1000)
        delivery.response_status = status
        delivery.last_error = error
        delay = None
        if not error:
            delivery.status, delivery.delivered_at, delivery.next_attempt_at = WebhookDelivery.Status.SUCCEEDED, now, None
        elif (
            delivery.attempts < settings.WEBHOOK_MAX_ATTEMPTS
            and now - delivery.created_at < timedelta(seconds=settings.WEBHOOK_RETRY_WINDOW_S)
        ):
            delay = retry_delay_s(delivery.attempts)
            delivery.status, delivery.next_attempt_at = WebhookDelivery.Status.RETRYING, now + timedelta(seconds=delay)
        else:
            delivery.status, delivery.next_attempt_at = WebhookDelivery.Status.FAILED, None
        delivery.save(update_fields=[
            "attempts", "latency_ms", "response_status", "last_error", "status", "delivered_at", "next_attempt_at",
        ])
    return delay


def webhook_delivery_resend(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a delivery again, whatever its status (same event id): one attempt now, and retries
    only while the event is inside its retry window; its attempts keep counting."""
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status=WebhookDelivery.Status.PENDING, next_attempt_at=None)
    transaction.on_commit(lambda: _enqueue([delivery.pk]))
    delivery.refresh_from_db()
    return delivery
