import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from aforo.services_check import ServiceProblem, kafka_answers, services_check
from aforo.demo.seed import demo_seed

PROCESSES = ["web", "consumer", "alerts", "worker", "beat", "banner"]


class Command(BaseCommand):
    help = (
        "Prepare a one-machine platform: check services (one line if one is down), create the database, migrate, "
        "seed the demo. Prints the Procfile processes to run (with the embedded broker when no Kafka is configured)."
    )
    requires_system_checks = []

    def handle(self, *args, **options):
        try:
            note = services_check(missing_database="create")
            if note:
                self.stderr.write(note)
        except ServiceProblem as problem:
            self.stderr.write(problem.line)
            sys.exit(1)
        self.stderr.write("migrating the database…")
        call_command("migrate", interactive=False, verbosity=0)
        history = demo_seed(history=True)["history"]
        self.stderr.write(f"demo history: {history['events']} past events rated, {history['invoices']} invoices settled")
        self.stderr.write("demo data ready (manage.py seed_demo --json prints its credentials)")
        processes = list(PROCESSES)
        if settings.KAFKA_EMBEDDED:
            if kafka_answers(bootstrap=settings.KAFKA_BOOTSTRAP_SERVERS):
                self.stderr.write(f"a Kafka-compatible broker already answers at {settings.KAFKA_BOOTSTRAP_SERVERS}; using it")
            else:
                processes.insert(0, "broker")
        self.stdout.write(" ".join(processes))
