from django.conf import settings
from django.core.management.base import BaseCommand

from billing.services import rated_records_publish
from aforo.kafka import BrokerUnavailable
from billing.usage import unmatched_usage_replay


class Command(BaseCommand):
    help = "Rate unmatched usage that now matches the catalog (after creating the key, subscription or price)."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", type=int, help="Only this tenant id.")

    def handle(self, *args, tenant=None, **options):
        counts, rated = unmatched_usage_replay(tenant_id=tenant)
        try:
            rated_records_publish(records=rated)
        except BrokerUnavailable as error:
            self.stderr.write(f"rated, but not published to {settings.KAFKA_TOPIC_RATED}: {error}")
        self.stdout.write(f"rated {counts['rated']}, still unmatched {counts['still_unmatched']}")
