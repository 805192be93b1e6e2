"""A consumer that cannot stall unseen.

Two views of a consumer group's health, from two sources that do not depend on each other:

- **The broker** says how far behind the group is: per partition, the committed offset and the
  high watermark (`group_lag`). Asked with a client that carries the group id but never
  subscribes, so asking never joins or disturbs the group.
- **The consumers** say what they are doing: each running consumer writes a heartbeat to Redis
  every few seconds (state, assigned partitions, its last batch and last commit); an entry
  expires when its process stops refreshing it.

`consumer_status` joins both; `manage.py consumer_status` and `/healthz/consumer` print it. The
`Watchdog` runs inside each consumer: when the group has lag and no committed offset of a
lagging partition has moved for `stall_after_s` — while this consumer is not in a known outage
backoff — it logs an error and asks the runner to exit non-zero, so the supervisor restarts it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaException, TopicPartition
from django.conf import settings

from aforo import stages
from aforo.kafka import client_config

logger = logging.getLogger(__name__)

HEARTBEAT_TTL_S = 15  # three missed rounds at the default interval: a killed consumer drops out of the status soon


@dataclass(frozen=True)
class PartitionLag:
    partition: int
    committed: int | None  # None: the group never committed on this partition
    high: int

    @property
    def lag(self) -> int:
        return max(self.high - (self.committed or 0), 0)


def group_lag(*, group: str, topic: str, timeout_s: float = 5.0) -> list[PartitionLag]:
    """Per partition of `topic`: the group's committed offset and the high watermark.

    The high watermark is the one a fetch reports, not only ListOffsets': the embedded broker
    (Tansu) answers ListOffsets with the last record *batch's* base offset + 1 (5 records
    produced in one batch: 1), which would hide waiting records. So the last batch of each
    non-empty partition is fetched once (assign, never subscribe: the group is not joined)."""
    client = Consumer(
        {**client_config(), "group.id": group, "enable.auto.commit": False, "fetch.wait.max.ms": 10, "enable.partition.eof": True}
    )
    try:
        metadata = client.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            return []
        partitions = sorted(metadata.partitions)
        committed = {
            tp.partition: (tp.offset if tp.offset >= 0 else None)
            for tp in client.committed([TopicPartition(topic, p) for p in partitions], timeout=timeout_s)
        }
        listed = {p: client.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s, cached=False)[1] for p in partitions}
        high = dict(listed)
        to_fetch = [TopicPartition(topic, p, listed[p] - 1) for p in partitions if listed[p] > 0]
        if to_fetch:
            client.assign(to_fetch)
            pending = {tp.partition for tp in to_fetch}
            deadline = time.monotonic() + timeout_s
            while pending and time.monotonic() < deadline:
                for message in client.consume(num_messages=len(to_fetch), timeout=0.2):
                    pending.discard(message.partition())
            for p in {tp.partition for tp in to_fetch}:
                fetched = client.get_watermark_offsets(TopicPartition(topic, p), cached=True)[1]
                high[p] = max(high[p], fetched)
        return [PartitionLag(partition=p, committed=committed.get(p), high=high[p]) for p in partitions]
    finally:
        client.close()


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _heartbeat_pattern(group: str) -> str:
    return f"{settings.CACHES['default']['KEY_PREFIX']}:consumer:{group}:*"


@dataclass
class Heartbeat:
    """What one consumer process says about itself (kept in Redis with a TTL)."""

    name: str
    group: str
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    started_at: str = field(default_factory=_now_iso)
    state: str = "starting"  # starting | running | backoff | stopping | stalled
    partitions: list[int] = field(default_factory=list)
    batches: int = 0
    last_batch_at: str | None = None
    last_commit_at: str | None = None
    last_error: str | None = None
    updated_at: str = field(default_factory=_now_iso)

    @property
    def key(self) -> str:
        return f"{settings.CACHES['default']['KEY_PREFIX']}:consumer:{self.group}:{self.host}:{self.pid}"


class ConsumerHealth:
    """A consumer's own record of itself: updated by the runner and its commit hook, written
    to Redis by the watchdog's thread (never from the hot path)."""

    def __init__(self, *, name: str, group: str) -> None:
        self.heartbeat = Heartbeat(name=name, group=group)
        self._lock = threading.Lock()

    def update(self, **changes: Any) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(self.heartbeat, key, value)

    def committed(self) -> None:
        """A batch's offsets were committed (called from the commit hook)."""
        now = _now_iso()
        with self._lock:
            self.heartbeat.batches += 1
            self.heartbeat.last_batch_at = self.heartbeat.last_commit_at = now
            self.heartbeat.state = "running"

    def publish(self) -> None:
        from django_redis import get_redis_connection

        with self._lock:
            self.heartbeat.updated_at = _now_iso()
            payload = orjson.dumps({**asdict(self.heartbeat), "budget": stages.clock.snapshot()})
            key = self.heartbeat.key
        get_redis_connection("default").set(key, payload, ex=HEARTBEAT_TTL_S)

    def withdraw(self) -> None:
        from django_redis import get_redis_connection

        try:
            get_redis_connection("default").delete(self.heartbeat.key)
        except Exception:  # stopping anyway: the entry expires by itself
            logger.debug("could not withdraw the consumer heartbeat", exc_info=True)


def heartbeats(*, group: str) -> list[dict[str, Any]]:
    """The live consumers of a group, as they last described themselves."""
    from django_redis import get_redis_connection

    redis = get_redis_connection("default")
    keys = sorted(redis.scan_iter(_heartbeat_pattern(group), count=100))
    return [orjson.loads(value) for value in redis.mget(keys) if value] if keys else []


@dataclass
class Progress:
    """When the group's committed offsets last moved while it had lag (the watchdog's memory),
    and the verdict drawn from it. Pure: readings in, a sentence or None out."""

    stall_after_s: float
    commits_lost_after_s: float = 15.0
    _offsets: dict[int, int | None] = field(default_factory=dict)
    _moved_at: float = field(default_factory=time.monotonic)
    _batches_when_moved: int = 0

    def observe(self, lags: list[PartitionLag], *, now: float | None = None) -> float:
        """Record a reading; return for how many seconds the group has had lag without any
        lagging partition's committed offset moving (0 when it has no lag or just moved)."""
        now = time.monotonic() if now is None else now
        offsets = {p.partition: p.committed for p in lags}
        lagging = [p for p in lags if p.lag > 0]
        if not lagging or offsets != self._offsets:
            self._moved_at = now
        self._offsets = offsets
        return now - self._moved_at if lagging else 0.0

    def verdict(
        self, lags: list[PartitionLag], *, batches: int, in_backoff: bool, now: float | None = None
    ) -> tuple[str, str] | None:
        """(kind, why) when the consumer is stuck, else None. kind `commits_lost`: this consumer
        committed batches that never reached the group (its Kafka consumer should be rebuilt);
        `stalled`: nothing moved at all (restart the process). `batches`: how many batches this
        consumer has committed so far; `in_backoff`: it rides out a known outage (the clock
        restarts)."""
        stalled_for = self.observe(lags, now=now)
        if stalled_for == 0:
            self._batches_when_moved = batches
        if in_backoff:
            self.observe([], now=now)
            return None
        committing = batches > self._batches_when_moved
        if stalled_for < (self.commits_lost_after_s if committing else self.stall_after_s):
            return None
        what = (
            f"{batches - self._batches_when_moved} batches committed here reached no committed offset"
            if committing else "no progress"
        )
        self._moved_at = time.monotonic() if now is None else now  # one verdict per stall
        self._batches_when_moved = batches
        return ("commits_lost" if committing else "stalled"), f"{what} for {stalled_for:.0f}s while {sum(p.lag for p in lags)} records wait"


class Watchdog:
    """The consumer's own thread: publish the heartbeat every `interval_s`, and read the group's
    lag from the broker. `on_stall(message)` (and the watchdog stops) once lag has not moved for
    `stall_after_s` while the consumer is not in a known outage backoff; `on_commits_lost(message)`
    once it has not moved for `commits_lost_after_s` while this consumer *is* committing batches:
    its commits do not reach the group (after a broker restart forgot the group, librdkafka's
    consumer keeps its old position and offsets the broker no longer takes, and arroyo ignores
    per-partition commit errors) — a new Kafka consumer starts clean."""

    def __init__(
        self, *, health: ConsumerHealth, topic: str, stall_after_s: float, on_stall: Callable[[str], None],
        on_commits_lost: Callable[[str], None], interval_s: float = 5.0, commits_lost_after_s: float = 10.0,
    ) -> None:
        self.health = health
        self.topic = topic
        self.progress = Progress(stall_after_s=stall_after_s, commits_lost_after_s=commits_lost_after_s)
        self.on_stall = on_stall
        self.on_commits_lost = on_commits_lost
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="consumer-watchdog", daemon=True)

    def start(self) -> Watchdog:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.health.withdraw()

    def check(self) -> None:
        """One round: heartbeat, lag, verdict."""
        try:
            self.health.publish()
        except Exception as error:  # Redis down: the consumer's own backoff reports it
            logger.warning("consumer heartbeat not written: %s", error)
        try:
            lags = group_lag(group=self.health.heartbeat.group, topic=self.topic, timeout_s=min(self.interval_s, 5.0))
        except KafkaException as error:
            logger.warning("consumer lag not read from the broker: %s", error)
            return
        heartbeat = self.health.heartbeat
        # Judged on the partitions this consumer holds, when it holds any: another member's
        # progress must not hide this one's stuck commits.
        held = [p for p in lags if p.partition in heartbeat.partitions] if heartbeat.partitions else lags
        verdict = self.progress.verdict(held, batches=heartbeat.batches, in_backoff=heartbeat.state == "backoff")
        if verdict is None:
            return
        kind, why = verdict
        message = f"{why} on {self.topic} (partitions {[p.partition for p in lags if p.lag]}; this consumer holds {heartbeat.partitions})"
        self.health.update(last_error=message)
        if kind == "commits_lost":
            self.on_commits_lost(message)
            return
        self.health.update(state="stalled")
        self.on_stall(message)
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
            except Exception:  # the watchdog must outlive whatever it reads
                logger.exception("consumer watchdog round failed")


def consumer_status(*, name: str, group: str, topic: str, stall_after_s: float) -> dict[str, Any]:
    """The group's lag per partition (broker) and its live consumers (their heartbeats), with a
    verdict: `ok`, `idle` (no live consumer and no lag), `lagging` (lag, and a consumer made
    progress within stall_after_s) or `stalled` (lag, and no consumer alive or none committed
    within stall_after_s)."""
    lags = group_lag(group=group, topic=topic)
    live = heartbeats(group=group)
    lag = sum(p.lag for p in lags)
    now = datetime.now(timezone.utc)

    def age(moment: str | None) -> float | None:
        return None if moment is None else (now - datetime.fromisoformat(moment.replace("Z", "+00:00"))).total_seconds()

    commit_ages = [a for a in (age(h.get("last_commit_at")) for h in live) if a is not None]
    freshest_commit_s = min(commit_ages) if commit_ages else None
    started_ages = [a for a in (age(h.get("started_at")) for h in live) if a is not None]
    if lag == 0:
        verdict = "ok" if live else "idle"
    elif freshest_commit_s is not None and freshest_commit_s < stall_after_s:
        verdict = "lagging"
    elif live and started_ages and min(started_ages) < stall_after_s:
        verdict = "lagging"  # a consumer started moments ago: give it its stall window
    else:
        verdict = "stalled"
    return {
        "consumer": name, "group": group, "topic": topic, "status": verdict, "lag": lag,
        "stall_after_s": stall_after_s, "last_commit_age_s": freshest_commit_s,
        "partitions": [{"partition": p.partition, "committed": p.committed, "high": p.high, "lag": p.lag} for p in lags],
        "consumers": live,
    }
