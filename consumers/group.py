"""The consumer group as the broker sees it, and the repair of a group the embedded broker wedged.

Tansu (the embedded dev broker) keeps a group's leader when that leader sends LeaveGroup while the
group is rebalancing ("Forming"): the leader is no longer a member, so it is never evicted, nobody
else may complete the SyncGroup, and every member, present or future, waits for an assignment
forever (until the broker restarts). Its ConsumerGroupDescribe answer shows it: `members` is
always empty there and `partition_assignor` carries the leader's member id, so a group with no
members and a leader is wedged. A real Kafka cluster has no such state (and answers an assignor
name such as "range" there), so nothing here runs unless the broker is Tansu."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from confluent_kafka import Consumer, ConsumerGroupState, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

logger = logging.getLogger(__name__)

KNOWN_ASSIGNORS = {"", "range", "roundrobin", "cooperative-sticky", "uniform"}


@dataclass(frozen=True)
class GroupState:
    state: str
    leader: str  # Tansu: the leader's member id; Kafka: "" (it answers the assignor's name)
    tansu: bool

    @property
    def wedged(self) -> bool:
        """No member, yet a leader: nobody can ever complete a rebalance (Tansu only)."""
        return self.tansu and self.state == "EMPTY" and bool(self.leader)


def describe(bootstrap: str, group_id: str, *, timeout_s: float = 5.0) -> GroupState:
    """The group's state and (Tansu) leader, from the broker's DescribeGroups/DescribeCluster."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    cluster = admin.describe_cluster(request_timeout=timeout_s).result()
    tansu = (cluster.cluster_id or "").startswith("tansu")
    described = admin.describe_consumer_groups([group_id], request_timeout=timeout_s)[group_id].result()
    state = described.state.name if isinstance(described.state, ConsumerGroupState) else str(described.state)
    assignor = described.partition_assignor or ""
    leader = assignor if tansu and assignor not in KNOWN_ASSIGNORS else ""
    return GroupState(state=state, leader=leader, tansu=tansu)


def repair_if_wedged(bootstrap: str, group_id: str, *, timeout_s: float = 5.0) -> bool:
    """If the group is wedged (see the module docstring), delete it and restore its committed
    offsets, so that the next JoinGroup elects a new leader and reading resumes where it stopped.
    Returns True if it repaired. Safe only while the group has no member, which `wedged` checks."""
    group = describe(bootstrap, group_id, timeout_s=timeout_s)
    if not group.wedged:
        return False
    admin = AdminClient({"bootstrap.servers": bootstrap})
    offsets = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group_id)], request_timeout=timeout_s)[
        group_id
    ].result().topic_partitions
    offsets = [TopicPartition(tp.topic, tp.partition, tp.offset) for tp in offsets if tp.offset >= 0]
    logger.warning(
        "consumer group %s is wedged on the embedded broker (state %s, departed leader %s): "
        "deleting it and restoring its %d committed offsets",
        group_id, group.state, group.leader, len(offsets),
    )
    admin.delete_consumer_groups([group_id], request_timeout=timeout_s)[group_id].result()
    if offsets:
        # A generation-less commit, accepted while the group has no member. Tansu's first group
        # request after a deletion fails (its cached group version no longer exists): retry.
        committer = Consumer({"bootstrap.servers": bootstrap, "group.id": group_id, "enable.auto.commit": False})
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    committer.commit(offsets=offsets, asynchronous=False)
                    break
                except KafkaException:
                    if time.monotonic() > deadline:
                        raise
                    threading.Event().wait(0.5)  # a one-off repair at start-up, not the hot path
        finally:
            committer.close()
    return True
