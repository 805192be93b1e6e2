from django.core.management.base import BaseCommand, CommandError

from aforo.kafka import BrokerUnavailable
from consumers.registry import CONSUMERS
from consumers.runner import EXIT_STALLED, ConsumerStalled, run


class Command(BaseCommand):
    help = "Run a Kafka consumer until SIGTERM/SIGINT. Consumers: " + ", ".join(CONSUMERS)

    def add_arguments(self, parser):
        parser.add_argument("name", choices=sorted(CONSUMERS))

    def handle(self, *args, name: str, **options):
        try:
            run(CONSUMERS[name])
        except BrokerUnavailable as error:
            raise CommandError(str(error)) from None
        except ConsumerStalled as error:
            raise CommandError(f"stalled: {error}", returncode=EXIT_STALLED) from None
