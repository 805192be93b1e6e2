"""A consumer cannot stall unseen: `consumer_status` and /healthz/consumer report lag per
partition and the live consumers; a consumer whose group has lag while nothing moves exits
non-zero (for its supervisor to restart it)."""

from __future__ import annotations

import signal
import subprocess
import sys

import orjson
import pytest
from confluent_kafka import Consumer

from aforo.kafka import produce_and_wait
from consumers.health import PartitionLag, Progress
from tests.conftest import wait_for
from tests.consumers.test_usage_consumer import ROOT, _consumer_process, produce, rated_count
from tests.factories import priced_setup


def test_progress_counts_the_seconds_with_lag_and_no_committed_offset_moving():
    progress = Progress(stall_after_s=10)
    lagging = [PartitionLag(partition=0, committed=5, high=9), PartitionLag(partition=1, committed=None, high=0)]
    assert progress.observe(lagging, now=100.0) == 0.0  # first reading: the clock starts
    assert progress.observe(lagging, now=104.0) == 4.0
    moved = [PartitionLag(partition=0, committed=6, high=9), lagging[1]]
    assert progress.observe(moved, now=106.0) == 0.0  # an offset moved
    assert progress.observe(moved, now=117.0) == 11.0
    caught_up = [PartitionLag(partition=0, committed=9, high=9), lagging[1]]
    assert progress.observe(caught_up, now=200.0) == 0.0  # no lag, no stall however long
    assert progress.observe(caught_up, now=300.0) == 0.0
    assert PartitionLag(partition=1, committed=None, high=3).lag == 3


def test_the_verdict_is_quicker_when_this_consumers_commits_never_reach_the_group():
    lagging = [PartitionLag(partition=0, committed=5, high=9)]
    idle = Progress(stall_after_s=60, commits_lost_after_s=15)
    assert idle.verdict(lagging, batches=0, in_backoff=False, now=0.0) is None
    assert idle.verdict(lagging, batches=0, in_backoff=False, now=20.0) is None  # 20 s without progress: not yet
    assert idle.verdict(lagging, batches=0, in_backoff=False, now=61.0) == ("stalled", "no progress for 61s while 4 records wait")

    committing = Progress(stall_after_s=60, commits_lost_after_s=15)
    assert committing.verdict(lagging, batches=3, in_backoff=False, now=0.0) is None
    # It commits batches (arroyo says so) but the group's committed offset never moves.
    assert committing.verdict(lagging, batches=9, in_backoff=False, now=16.0) == (
        "commits_lost", "6 batches committed here reached no committed offset for 16s while 4 records wait"
    )
    assert committing.verdict(lagging, batches=10, in_backoff=False, now=17.0) is None  # one verdict per stall

    outage = Progress(stall_after_s=10)
    assert outage.verdict(lagging, batches=0, in_backoff=False, now=0.0) is None
    assert outage.verdict(lagging, batches=0, in_backoff=True, now=30.0) is None  # a known outage restarts the clock
    assert outage.verdict(lagging, batches=0, in_backoff=False, now=35.0) is None
    assert outage.verdict(lagging, batches=0, in_backoff=False, now=44.0) is None  # 9 s since the clock restarted at 35
    assert outage.verdict(lagging, batches=0, in_backoff=False, now=46.0) is not None


def _status(kafka, *extra: str) -> tuple[int, dict]:
    env_kafka = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka["bootstrap"], "KAFKA_TOPIC_USAGE": kafka["usage"],
        "KAFKA_CONSUMER_GROUP_USAGE": kafka["group"],
    }
    import os

    from django.db import connection

    database = connection.settings_dict
    result = subprocess.run(
        [sys.executable, "manage.py", "consumer_status", "usage", "--json", *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={
            **os.environ, **env_kafka, "DJANGO_SETTINGS_MODULE": "aforo.settings.test",
            "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        },
    )
    assert result.stdout, result.stderr
    return result.returncode, orjson.loads(result.stdout)


@pytest.mark.kafka
def test_consumer_status_reports_lag_live_consumers_and_a_stall(kafka, transactional_db):
    setup = priced_setup()
    produce_and_wait([produce(kafka, setup, f"h{i}") for i in range(5)])
    code, status = _status(kafka, "--stalled-after", "5")
    assert (code, status["status"], status["lag"], status["consumers"]) == (1, "stalled", 5, [])  # records wait, nobody reads

    consumer = _consumer_process(kafka, CONSUMER_WATCHDOG_INTERVAL_S="0.5")
    try:
        wait_for(lambda: rated_count(setup.tenant) == 5, timeout=60)
        code, status = wait_for(lambda: (s := _status(kafka))[1]["consumers"] and s, timeout=20)
        assert (code, status["status"], status["lag"]) == (0, "ok", 0)
        [live] = status["consumers"]
        assert live["pid"] == consumer.pid and live["state"] == "running" and live["batches"] >= 1
        assert sorted(live["partitions"]) == [0, 1] and live["last_commit_at"]
        assert sum(p["committed"] or 0 for p in status["partitions"]) == 5
    finally:
        consumer.send_signal(signal.SIGTERM)
        consumer.communicate(timeout=60)
    assert consumer.returncode == 0
    code, status = _status(kafka)
    assert (code, status["status"], status["consumers"]) == (0, "idle", [])  # its heartbeat was withdrawn


@pytest.mark.kafka
def test_a_consumer_that_makes_no_progress_while_records_wait_exits_non_zero(kafka, transactional_db):
    """A wedged group: another member holds every partition and never polls again (a zombie).
    A new consumer joins, gets nothing while the group waits for the zombie, and records wait.
    Its watchdog notices within CONSUMER_STALL_AFTER_S, logs an error and exits 3."""
    setup = priced_setup()
    zombie = Consumer({
        "bootstrap.servers": kafka["bootstrap"], "group.id": kafka["group"], "enable.auto.commit": False,
        "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000, "auto.offset.reset": "earliest",
    })
    zombie.subscribe([kafka["usage"]])
    wait_for(lambda: zombie.poll(0.2) is None and zombie.assignment(), timeout=30, message="the zombie holds the partitions")
    # From here on it never polls: librdkafka keeps its session alive, but it cannot rejoin.
    produce_and_wait([produce(kafka, setup, f"w{i}") for i in range(3)])
    consumer = _consumer_process(kafka, CONSUMER_STALL_AFTER_S="4", CONSUMER_WATCHDOG_INTERVAL_S="0.5", CONSUMER_STALL_GRACE_S="20")
    try:
        output = consumer.communicate(timeout=120)[0].decode()
    finally:
        zombie.close()
    assert consumer.returncode == 3, output[-3000:]
    assert "is stalled: no progress for" in output and "3 records wait" in output
    assert rated_count(setup.tenant) == 0


@pytest.mark.kafka
def test_healthz_consumer_is_503_while_records_wait_with_no_consumer(kafka, db, client, settings):
    settings.CONSUMER_STALL_AFTER_S = 5
    idle = client.get("/healthz/consumer")
    assert (idle.status_code, idle.json()["status"], idle.json()["lag"]) == (200, "idle", 0)
    produce_and_wait([produce(kafka, priced_setup(), f"z{i}") for i in range(4)])
    stalled = client.get("/healthz/consumer?name=usage")
    assert (stalled.status_code, stalled.json()["status"], stalled.json()["lag"]) == (503, "stalled", 4)
    assert client.get("/healthz/consumer?name=nope").status_code == 404
