"""What a consumer treats as an outage (a service unreachable: replay from the last committed
offsets after a backoff) rather than as a record's fault (dead-letter it and move on)."""

from __future__ import annotations

import psycopg
import redis
from confluent_kafka import KafkaException
from django.db import InterfaceError, OperationalError

from aforo.kafka import BrokerUnavailable

# Django's database errors, and psycopg's own: the ledgers' bulk writes (aforo.copy, aforo.db)
# run on psycopg cursors of Django's connection, whose errors Django does not wrap. psycopg's
# OperationalError covers a dropped connection and also deadlocks and serialization failures
# (a retry of the batch is a clean replay).
DATABASE_UNAVAILABLE: tuple[type[BaseException], ...] = (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError)
OUTAGES: tuple[type[BaseException], ...] = (
    *DATABASE_UNAVAILABLE, redis.ConnectionError, redis.TimeoutError, KafkaException, BrokerUnavailable,
)
