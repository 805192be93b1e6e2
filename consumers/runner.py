"""Runs a registered consumer as an arroyo StreamProcessor until SIGTERM/SIGINT, which
finish the batch in flight, commit its offsets and exit cleanly.

Group membership is handled with care for the embedded broker (Tansu 0.6), which never replaces
a leader that leaves while its group rebalances — the group then assigns nothing, to anyone,
until the broker restarts (consumers.group). So a consumer leaves only from a settled group
(SettlingConsumer.close), says when it holds no partitions, restarts its processor when the group
looks wedged, and every (re)start repairs a wedged group first."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Mapping, MutableSequence
from typing import Any

from arroyo.backends.kafka import KafkaConsumer, KafkaPayload, KafkaProducer
from arroyo.backends.kafka.configuration import build_kafka_consumer_configuration
from arroyo.commit import IMMEDIATE
from arroyo.dlq import DlqPolicy, KafkaDlqProducer
from arroyo.errors import ConsumerError
from arroyo.processing import StreamProcessor
from arroyo.processing.strategies import ProcessingStrategy, ProcessingStrategyFactory
from arroyo.types import BrokerValue, Commit, Partition, Topic
from django.conf import settings
from django.db import close_old_connections

from aforo.kafka import BrokerUnavailable, producer_config, topics_ensure

from .chunks import ChunkingKafkaConsumer
from .errors import OUTAGES
from .group import describe, repair_if_wedged
from .health import ConsumerHealth, Watchdog
from .registry import ConsumerDefinition

EXIT_STALLED = 3  # `run_consumer` exit status when the watchdog stopped it

logger = logging.getLogger(__name__)


class ReasonedDlqProducer(KafkaDlqProducer):
    """arroyo's Kafka DLQ producer, plus a `reason` header saying why the record is poison.
    The value and key are the original bytes, untouched."""

    def __init__(self, producer: KafkaProducer, topic: Topic):
        super().__init__(producer, topic)
        self._producer = producer
        self._topic = topic

    def produce(self, value: BrokerValue[KafkaPayload], reason: str | None = None):
        headers: MutableSequence[tuple[str, bytes]] = list(value.payload.headers)
        headers.extend(
            [
                ("reason", (reason or "invalid").encode()),
                ("original_topic", value.partition.topic.name.encode()),
                ("original_partition", str(value.partition.index).encode()),
                ("original_offset", str(value.offset).encode()),
                ("original_timestamp", str(int(value.timestamp.timestamp() * 1000)).encode()),
            ]
        )
        return self._producer.produce(self._topic, KafkaPayload(value.payload.key, value.payload.value, headers))


class PromptKafkaConsumer(ChunkingKafkaConsumer):
    """arroyo's Kafka consumer with a bounded poll wait. arroyo polls with a fixed 1 s timeout
    and lets a time-bounded batch flush only after that poll returns, so when traffic pauses
    the last partial batch would wait up to a second. Capping the wait at the batch time
    keeps event-to-rated latency at the batch bound even for a lone event."""

    def __init__(self, configuration: dict[str, Any], *, max_wait_s: float, chunk_size: int | None = None):
        super().__init__(configuration, chunk_size=chunk_size)
        self._max_wait_s = max_wait_s

    def poll(self, timeout: float | None = None):
        return super().poll(self._max_wait_s if timeout is None else min(timeout, self._max_wait_s))


class SettlingConsumer(PromptKafkaConsumer):
    """Leaves the group only once membership has settled, and says when it has no partitions.

    close() first lets a rebalance in progress finish (polling; records are dropped: they were
    not committed and the next owner reads them again) and waits one heartbeat more, so that a
    rebalance begun by another member reaches it, then sends LeaveGroup — at most a session
    timeout + 2 s later. On Tansu it also waits while the broker names it the leader of an
    unsettled group. poll() warns after KAFKA_NO_ASSIGNMENT_WARN_S without partitions and, after
    twice that, raises (an outage: the runner rebuilds and repairs) if Tansu's group has a leader
    that is not this consumer."""

    def __init__(
        self, configuration: dict[str, Any], *, max_wait_s: float, group_id: str, settle_s: float, heartbeat_s: float,
        chunk_size: int | None = None,
    ):
        self._cgrp: dict[str, Any] = {}
        self._stats_at = 0.0
        configuration = {**configuration, "statistics.interval.ms": 500, "stats_cb": self._on_stats}
        super().__init__(configuration, max_wait_s=max_wait_s, chunk_size=chunk_size)
        self._group_id = group_id
        self._settle_s = settle_s
        self._heartbeat_s = heartbeat_s
        self._assigned_at = 0.0
        self._revoked_at = 0.0
        self._unassigned_since: float | None = time.monotonic()
        self._warned = False

    def _on_stats(self, raw: str) -> None:
        self._cgrp = json.loads(raw).get("cgrp") or {}
        self._stats_at = time.monotonic()

    def subscribe(self, topics, on_assign=None, on_revoke=None):
        def assigned(partitions):
            now = time.monotonic()
            logger.info("group %s: %d partitions assigned after %.1fs", self._group_id, len(partitions), now - (self._unassigned_since or now))
            self._assigned_at, self._unassigned_since, self._warned = now, None, False
            if on_assign is not None:
                on_assign(partitions)

        def revoked(partitions):
            self._revoked_at = time.monotonic()
            if partitions:
                logger.info("group %s: %d partitions revoked (rebalance)", self._group_id, len(partitions))
                self._unassigned_since = self._revoked_at
            if on_revoke is not None:
                on_revoke(partitions)

        super().subscribe(topics, on_assign=assigned, on_revoke=revoked)

    def poll(self, timeout: float | None = None):
        waited = 0.0 if self._unassigned_since is None else time.monotonic() - self._unassigned_since
        if waited > settings.KAFKA_NO_ASSIGNMENT_WARN_S and not self._warned:
            self._warned = True
            logger.warning(
                "group %s: no partitions assigned for %.0fs (librdkafka group state %s, join state %s)",
                self._group_id, waited, self._cgrp.get("state"), self._cgrp.get("join_state"),
            )
        if waited > 2 * settings.KAFKA_NO_ASSIGNMENT_WARN_S:
            group = describe(settings.KAFKA_BOOTSTRAP_SERVERS, self._group_id)
            if group.tansu and group.leader and group.leader != self.member_id:
                self._settle_s = 0.0  # wedged by a departed leader already: leave at once
                raise BrokerUnavailable(f"group {self._group_id} wedged by departed leader {group.leader} ({group.state})")
            self._unassigned_since = time.monotonic()  # not that: look again later
        return super().poll(timeout)

    def _settled(self, since: float) -> bool:
        now = time.monotonic()
        if self._assigned_at and self._assigned_at >= self._revoked_at:  # holds partitions, no rebalance under way
            return now >= max(since, self._assigned_at) + self._heartbeat_s + 0.3
        # no partitions (e.g. no topic): librdkafka's statistics, 0.5 s apart, say whether it is joining
        return self._stats_at > since + self._heartbeat_s + 0.3 and self._cgrp.get("join_state") == "steady"

    def _leading_a_rebalance(self) -> bool:
        """Tansu only: the broker names us the leader of a group that is rebalancing (another
        member just left or joined), so our LeaveGroup now would wedge it."""
        try:
            group = describe(settings.KAFKA_BOOTSTRAP_SERVERS, self._group_id, timeout_s=2)
        except Exception:
            return False
        return group.tansu and group.state != "STABLE" and group.leader == self.member_id

    def close(self, timeout: float | None = None) -> None:
        started = time.monotonic()
        try:
            while time.monotonic() < started + self._settle_s and not (self._settled(started) and not self._leading_a_rebalance()):
                if self._stats_at > started and self._cgrp.get("state") != "up":
                    break  # no coordinator: a LeaveGroup would not arrive anyway
                KafkaConsumer.poll(self, 0.1)
        except Exception as error:  # closing regardless
            logger.info("group %s: settling before leaving: %s", self._group_id, error)
        logger.info("group %s: leaving after %.1fs settling", self._group_id, time.monotonic() - started)
        super().close(timeout)


def consumer_configuration(*, group_id: str) -> dict[str, Any]:
    return build_kafka_consumer_configuration(
        default_config={
            "session.timeout.ms": settings.KAFKA_SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": settings.KAFKA_HEARTBEAT_INTERVAL_MS,
            # Return fetches as soon as records arrive: at low rates the default 500 ms wait
            # would be most of the event-to-rated latency.
            "fetch.wait.max.ms": settings.KAFKA_FETCH_WAIT_MAX_MS,
            # A topic re-created after a broker restart is noticed (and assigned) within seconds,
            # not at librdkafka's default 5-minute metadata refresh.
            "topic.metadata.refresh.interval.ms": settings.KAFKA_METADATA_REFRESH_MS,
        },
        bootstrap_servers=[settings.KAFKA_BOOTSTRAP_SERVERS],
        group_id=group_id,
        auto_offset_reset="earliest",
        enable_auto_commit=False,  # offsets move only through CommitOffsets, after the DB commit
    )


class _ObservedFactory(ProcessingStrategyFactory[KafkaPayload]):
    """The definition's strategy factory, telling the consumer's health record which partitions
    it holds and when each batch's offsets were committed."""

    def __init__(self, inner: ProcessingStrategyFactory[KafkaPayload], health: ConsumerHealth):
        self.inner = inner
        self.health = health

    def create_with_partitions(self, commit: Commit, partitions: Mapping[Partition, int]) -> ProcessingStrategy[KafkaPayload]:
        self.health.update(partitions=sorted(p.index for p in partitions), state="running")

        def observed_commit(offsets: Mapping[Partition, int], force: bool = False) -> None:
            commit(offsets, force)
            if offsets:
                self.health.committed()

        return self.inner.create_with_partitions(observed_commit, partitions)

    def shutdown(self) -> None:
        self.inner.shutdown()


def build_processor(
    definition: ConsumerDefinition, *, health: ConsumerHealth | None = None
) -> tuple[StreamProcessor[KafkaPayload], KafkaProducer | None]:
    """The processor, and the DLQ producer it owns (the caller closes it when the processor ends)."""
    dlq_topic = definition.dlq_topic()
    dlq_policy = None
    dlq_producer = None
    if dlq_topic:
        dlq_producer = KafkaProducer(producer_config())
        dlq_policy = DlqPolicy(ReasonedDlqProducer(dlq_producer, Topic(dlq_topic)), None, None)
    factory = definition.strategy_factory(health=health)
    processor = StreamProcessor(
        consumer=SettlingConsumer(
            consumer_configuration(group_id=definition.group_id()),
            max_wait_s=settings.USAGE_BATCH_MAX_TIME_S,
            group_id=definition.group_id(),
            settle_s=settings.KAFKA_SESSION_TIMEOUT_MS / 1000 + 2,
            heartbeat_s=settings.KAFKA_HEARTBEAT_INTERVAL_MS / 1000,
            chunk_size=settings.USAGE_BATCH_MAX_SIZE if definition.chunked else None,
        ),
        topic=Topic(definition.topic()),
        processor_factory=_ObservedFactory(factory, health) if health is not None else factory,
        commit_policy=IMMEDIATE,
        dlq_policy=dlq_policy,
    )
    return processor, dlq_producer


class ConsumerStalled(Exception):
    """The watchdog saw no progress while records waited: exit non-zero for a restart."""


def run(definition: ConsumerDefinition, *, install_signals: bool = True, max_backoff_s: float = 30.0) -> None:
    """Run until a signal. A transient error (database, Redis or broker unavailable) closes the
    processor without committing and starts a new one after a backoff: the batch in flight is
    replayed from the last committed offset, which idempotency makes safe. Records at fault are
    the steps' business (DLQ). The watchdog (consumers.health) raises ConsumerStalled when the
    group has lag and nothing moves for CONSUMER_STALL_AFTER_S; any other error stops the
    process too (non-zero exit) for its supervisor to restart."""
    topics_ensure(names=definition.topics_to_ensure())
    health = ConsumerHealth(name=definition.name, group=definition.group_id())
    state: dict[str, Any] = {"processor": None, "stalled": None}
    stopping = threading.Event()

    def stop(signum: int, _frame: Any) -> None:
        logger.info("signal %s: finishing the current batch, then stopping", signum)
        health.update(state="stopping")
        stopping.set()
        if state["processor"] is not None:
            state["processor"].signal_shutdown()

    def commits_lost(message: str) -> None:
        logger.error("consumer %s: %s; rebuilding its Kafka consumer", definition.name, message)
        state["rebuild"] = True
        if state["processor"] is not None:
            state["processor"].signal_shutdown()

    def stalled(message: str) -> None:
        logger.error("consumer %s is stalled: %s; stopping so that its supervisor restarts it", definition.name, message)
        state["stalled"] = message
        stopping.set()
        if state["processor"] is not None:
            state["processor"].signal_shutdown()
        # A processor stuck inside a call never reaches its shutdown check: leave anyway.
        threading.Timer(settings.CONSUMER_STALL_GRACE_S, lambda: os._exit(EXIT_STALLED)).start()

    if install_signals:
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    watchdog = Watchdog(
        health=health, topic=definition.topic(), stall_after_s=settings.CONSUMER_STALL_AFTER_S, on_stall=stalled,
        on_commits_lost=commits_lost, interval_s=settings.CONSUMER_WATCHDOG_INTERVAL_S, commits_lost_after_s=settings.CONSUMER_COMMITS_LOST_AFTER_S,
    ).start()
    backoff = 1.0
    first = True
    try:
        while not stopping.is_set():
            started = time.monotonic()
            dlq_producer = None
            try:
                if not first:
                    topics_ensure(names=definition.topics_to_ensure(), wait_s=5)  # a restarted memory broker has none
                first = False
                repair_if_wedged(settings.KAFKA_BOOTSTRAP_SERVERS, definition.group_id())
                processor, dlq_producer = build_processor(definition, health=health)
                state["processor"] = processor
                if stopping.is_set():  # the signal came while the processor was being built
                    processor.signal_shutdown()
                logger.info("consumer %s reading %s as group %s", definition.name, definition.topic(), definition.group_id())
                processor.run()
                if state.pop("rebuild", False) and not stopping.is_set():
                    continue  # the watchdog asked for a new Kafka consumer (see Watchdog)
                break
            except (*OUTAGES, ConsumerError) as error:
                close_old_connections()
                if time.monotonic() - started > max_backoff_s:
                    backoff = 1.0
                health.update(state="backoff", last_error=f"{type(error).__name__}: {error}"[:300], partitions=[])
                logger.error("consumer %s: %s; restarting in %.0fs from the last committed offsets", definition.name, error, backoff)
                stopping.wait(backoff)  # a service is down: wait before reconnecting (a signal ends the wait)
                backoff = min(backoff * 2, max_backoff_s)
            finally:
                state["processor"] = None
                if dlq_producer is not None:
                    dlq_producer.close().result(timeout=10)
    finally:
        watchdog.stop()
    if state["stalled"]:
        raise ConsumerStalled(state["stalled"])
