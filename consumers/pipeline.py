"""The pipeline's state for people (the admin overview): per registered consumer, its group's
lag on its topic and how many records its DLQ has taken, read from the broker with short
timeouts. Never raises: an unreachable broker, or any read that fails, is "unknown" (None)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from confluent_kafka.admin import AdminClient

from aforo.kafka import client_config

from .health import PartitionLag, group_lag
from .registry import CONSUMERS

logger = logging.getLogger(__name__)

READ_TIMEOUT_S = 1.5  # per broker read: the page waits at most a few of these when the broker is slow


@dataclass
class ConsumerPipeline:
    name: str
    group: str
    topic: str
    dlq_topic: str | None
    partitions: list[PartitionLag] = field(default_factory=list)
    lag: int | None = None  # None: unknown (broker unreachable or the read failed)
    dead_lettered: int | None = None  # records the DLQ topic ever took (its high watermarks); None: unknown


def broker_reachable(*, timeout_s: float = READ_TIMEOUT_S) -> bool:
    try:
        AdminClient({**client_config(), "socket.connection.setup.timeout.ms": max(1000, int(timeout_s * 1000))}).list_topics(
            timeout=timeout_s
        )
        return True
    except Exception as error:  # KafkaException, or a timeout: the page says "unknown"
        logger.warning("broker unreachable for the overview: %s", error)
        return False


def _read(row: ConsumerPipeline, timeout_s: float) -> None:
    try:
        row.partitions = group_lag(group=row.group, topic=row.topic, timeout_s=timeout_s)
        row.lag = sum(p.lag for p in row.partitions)
    except Exception:
        logger.warning("lag of %s on %s unknown", row.group, row.topic, exc_info=True)
    if row.dlq_topic:
        try:
            # The high watermarks of the DLQ's partitions (the group never commits there).
            row.dead_lettered = sum(p.high for p in group_lag(group=row.group, topic=row.dlq_topic, timeout_s=timeout_s))
        except Exception:
            logger.warning("DLQ %s count unknown", row.dlq_topic, exc_info=True)


def pipeline_state(*, timeout_s: float = READ_TIMEOUT_S) -> dict[str, object]:
    """Each registered consumer's lag and DLQ count; `reachable` False when the broker did not
    answer (then every figure is None)."""
    rows = [
        ConsumerPipeline(name=d.name, group=d.group_id(), topic=d.topic(), dlq_topic=d.dlq_topic())
        for d in CONSUMERS.values()
    ]
    reachable = broker_reachable(timeout_s=timeout_s)
    if reachable:
        for row in rows:
            _read(row, timeout_s)
    return {"reachable": reachable, "consumers": rows}
