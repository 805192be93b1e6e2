import sys

from django.core.management.base import BaseCommand

from aforo.services_check import ServiceProblem, services_check


class Command(BaseCommand):
    help = "Check PostgreSQL and Redis are reachable (one line and exit 1 if not); optionally create the database."
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument(
            "--missing-database", choices=["fail", "create", "ignore"], default="fail",
            help="What to do when the server answers but the database does not exist.",
        )

    def handle(self, *args, missing_database="fail", **options):
        try:
            note = services_check(missing_database=missing_database)
            if note:
                self.stderr.write(note)
        except ServiceProblem as problem:
            self.stderr.write(problem.line)
            sys.exit(1)
