from django.core.management.base import BaseCommand

from billing.replay.services import replay_run_create, replay_run_execute


class Command(BaseCommand):
    help = "Rate unmatched usage that now matches the catalog (an alias of `manage.py replay --source unmatched`)."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", type=int, help="Only this tenant id.")

    def handle(self, *args, tenant=None, **options):
        run = replay_run_create(source="unmatched", tenant_id=tenant, requested_by="manage.py replay_unmatched")
        report = replay_run_execute(run_id=run.pk).report
        if report.get("not_published"):
            self.stderr.write(f"rated, but not published: {report['not_published']['error']}")
        counts = report["counts"]
        self.stdout.write(f"rated {counts['rated']}, still unmatched {counts['still_unmatched']}")
