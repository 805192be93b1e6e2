"""Every Kafka consumer of Aforo, by the name `run_consumer <name>` takes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class ConsumerDefinition:
    name: str
    topic: Callable[[], str]
    group_id: Callable[[], str]
    dlq_topic: Callable[[], str | None]
    topics_to_ensure: Callable[[], list[str]]
    strategy_factory: Callable[..., object]  # (*, health: ConsumerHealth | None) -> ProcessingStrategyFactory
    description: str
    chunked: bool = False  # the consumer reads records a chunk at a time (consumers.chunks)


def _usage_factory(*, health=None):
    from .usage.factory import UsageStrategyFactory

    return UsageStrategyFactory(health=health)


def _usage_topics() -> list[str]:
    from aforo.kafka import usage_topics

    return usage_topics()


def _alerts_factory(*, health=None):
    from .alerts.factory import AlertsStrategyFactory

    return AlertsStrategyFactory(health=health)


CONSUMERS: dict[str, ConsumerDefinition] = {
    "usage": ConsumerDefinition(
        name="usage",
        topic=lambda: settings.KAFKA_TOPIC_USAGE,
        group_id=lambda: settings.KAFKA_CONSUMER_GROUP_USAGE,
        dlq_topic=lambda: settings.KAFKA_TOPIC_USAGE_DLQ,
        topics_to_ensure=_usage_topics,
        strategy_factory=_usage_factory,
        description="Rates usage events: batch → decode → enrich → rate+persist → publish rated → commit.",
        chunked=True,
    ),
    "alerts": ConsumerDefinition(
        name="alerts",
        topic=lambda: settings.KAFKA_TOPIC_RATED,
        group_id=lambda: settings.KAFKA_CONSUMER_GROUP_ALERTS,
        dlq_topic=lambda: settings.KAFKA_TOPIC_RATED_DLQ,
        topics_to_ensure=_usage_topics,
        strategy_factory=_alerts_factory,
        description="Evaluates alert rules on rated usage: batch → decode → evaluate (firings + webhooks) → commit.",
        chunked=True,
    ),
}
