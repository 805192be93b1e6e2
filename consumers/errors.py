"""What a consumer treats as an outage (a service unreachable: replay from the last committed
offsets after a backoff) rather than as a record's fault (dead-letter it and move on)."""

from __future__ import annotations

import redis
from confluent_kafka import KafkaException
from django.db import InterfaceError, OperationalError

from aforo.kafka import BrokerUnavailable

OUTAGES: tuple[type[BaseException], ...] = (
    OperationalError, InterfaceError, redis.ConnectionError, redis.TimeoutError, KafkaException, BrokerUnavailable,
)
