"""The alerts consumer: reads usage.rated.v1 a batch at a time and evaluates the tenants' alert
rules over it (billing.alerts.evaluate), then commits the offsets.

    batch      (ChunkBuffer, as the usage consumer: up to USAGE_BATCH_MAX_SIZE records or
                USAGE_BATCH_MAX_TIME_S after the first)
    evaluate   (decode each rated record — one that is not a rated record goes to
                usage.rated.v1.dlq with the reason — then ONE call to AlertEvaluator.evaluate)
    commit     (arroyo CommitOffsets)

An outage (PostgreSQL, Redis, the broker) is raised to the OutageBackoff, which holds the batch
and retries it; a replay is safe (firings are unique; anomaly buckets have a watermark). Any
other error the evaluation meets is logged with the batch's offsets and the batch is evaluated
again record by record, so one record that breaks a rule cannot stop the consumer: that record
goes to the DLQ alone."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from arroyo.types import BrokerValue, Message
from django.conf import settings
from django.db import close_old_connections

from aforo.kafka import produce_and_wait
from billing.alerts.evaluate import AlertEvaluator, Rated, rated_decode
from notify.services import InlineSender

from ..errors import OUTAGES
from ..usage.steps import _reason, dead_letter_record

logger = logging.getLogger(__name__)


class EvaluateStep:
    def __init__(self, evaluator: AlertEvaluator | None = None) -> None:
        # Its webhooks' first attempts are made by threads of this process (notify.services.InlineSender).
        self.evaluator = evaluator or AlertEvaluator(sender=InlineSender())
        self.totals = {"records": 0, "fired": 0, "dead_lettered": 0}
        self._last_log = time.monotonic()

    def __call__(self, message: Message[Sequence[BrokerValue[list[Any]]]]) -> int:
        close_old_connections()
        records = [record for chunk in message.payload for record in chunk.payload]
        rated: list[tuple[Rated, Any]] = []
        poison: list[tuple[Any, str]] = []
        for record in records:
            try:
                rated.append(
                    (rated_decode(record.value() or b"", partition=f"{record.topic()}:{record.partition()}",
                                  offset=record.offset()), record)
                )
            except Exception as error:  # noqa: BLE001 — a record that is not a rated record
                poison.append((record, f"undecodable: {_reason(error)}"))
        try:
            fired = len(self.evaluator.evaluate([r for r, _ in rated]))
        except OUTAGES:
            raise
        except Exception:
            logger.exception("alert evaluation of a batch of %d failed; evaluating it record by record", len(rated))
            fired = 0
            for one, record in rated:
                try:
                    fired += len(self.evaluator.evaluate([one]))
                except OUTAGES:
                    raise
                except Exception as error:  # noqa: BLE001
                    logger.exception("rated record %s/%s breaks alert evaluation → DLQ", record.partition(), record.offset())
                    poison.append((record, f"evaluation_failed: {_reason(error)}"))
        if poison:
            for record, reason in poison:
                logger.warning("rated record %s/%s → DLQ: %s", record.partition(), record.offset(), reason)
            produce_and_wait(
                [dead_letter_record(record, reason=reason, topic=settings.KAFKA_TOPIC_RATED_DLQ) for record, reason in poison]
            )
        self.totals["records"] += len(records)
        self.totals["fired"] += fired
        self.totals["dead_lettered"] += len(poison)
        if time.monotonic() - self._last_log > 10:
            self._last_log = time.monotonic()
            logger.info("alerts consumer totals: %s", self.totals)
        return len(records)
