import gc

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from aforo.kafka import BrokerUnavailable
from consumers.registry import CONSUMERS
from consumers.runner import EXIT_STALLED, ConsumerStalled, run


def gc_tune() -> None:
    """A consumer allocates tens of thousands of short-lived objects per batch, nearly all freed
    by reference counting when the batch ends; with the default thresholds (700, 10, 10) the
    cyclic collector ran dozens of times per batch, scanning Django's and the caches' objects
    over and over (~11% of the consumer's CPU). Everything loaded at start-up is frozen (never
    scanned again) and the young generation is collected every CONSUMER_GC_GEN0 allocations."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(settings.CONSUMER_GC_GEN0, 20, 100)


class Command(BaseCommand):
    help = "Run a Kafka consumer until SIGTERM/SIGINT. Consumers: " + ", ".join(CONSUMERS)

    def add_arguments(self, parser):
        parser.add_argument("name", choices=sorted(CONSUMERS))

    def handle(self, *args, name: str, **options):
        gc_tune()
        try:
            run(CONSUMERS[name])
        except BrokerUnavailable as error:
            raise CommandError(str(error)) from None
        except ConsumerStalled as error:
            raise CommandError(f"stalled: {error}", returncode=EXIT_STALLED) from None
