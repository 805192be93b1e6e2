import sys

import orjson
from confluent_kafka import KafkaException
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from consumers.health import consumer_status
from consumers.registry import CONSUMERS


class Command(BaseCommand):
    help = (
        "A consumer group's health: per partition lag (from the broker) and its live consumers with their last "
        "batch and commit (their heartbeats in Redis). Exit 1 when records wait and nothing has been committed "
        "for --stalled-after seconds (or no consumer is alive)."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", nargs="?", default="usage", choices=sorted(CONSUMERS))
        parser.add_argument("--stalled-after", type=float, default=None, help="seconds (default CONSUMER_STALL_AFTER_S)")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, name: str, stalled_after: float | None, json: bool, **options):
        definition = CONSUMERS[name]
        try:
            status = consumer_status(
                name=name, group=definition.group_id(), topic=definition.topic(),
                stall_after_s=stalled_after if stalled_after is not None else settings.CONSUMER_STALL_AFTER_S,
            )
        except KafkaException as error:
            raise CommandError(f"the broker at {settings.KAFKA_BOOTSTRAP_SERVERS} did not answer: {error}") from None
        if json:
            self.stdout.write(orjson.dumps(status, option=orjson.OPT_INDENT_2).decode())
        else:
            self.stdout.write(_text(status))
        if status["status"] == "stalled":
            sys.exit(1)


def _text(status: dict) -> str:
    age = status["last_commit_age_s"]
    lines = [
        f"{status['consumer']} consumer (group {status['group']}, topic {status['topic']}): {status['status']} — "
        f"{status['lag']:,} records waiting; last commit {'never' if age is None else f'{age:.1f} s ago'}"
    ]
    for p in status["partitions"]:
        committed = "none" if p["committed"] is None else f"{p['committed']:,}"
        lines.append(f"  partition {p['partition']}: committed {committed}, high watermark {p['high']:,}, lag {p['lag']:,}")
    if not status["consumers"]:
        lines.append("  no live consumer")
    for c in status["consumers"]:
        lines.append(
            f"  consumer {c['host']}:{c['pid']} {c['state']}, partitions {c['partitions']}, {c['batches']:,} batches, "
            f"last commit {c['last_commit_at'] or 'never'}" + (f", last error: {c['last_error']}" if c.get("last_error") else "")
        )
    return "\n".join(lines)
