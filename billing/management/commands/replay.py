from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from aforo.exceptions import ApiError
from billing.models import ReplayRun
from billing.replay.plan import ReplayTally
from billing.replay.services import replay_params_check, replay_report, replay_run_create, replay_run_execute


class Command(BaseCommand):
    help = (
        "Replay what the usage pipeline could not take, after a fix: --source dlq (dead letters, re-validated and "
        "re-produced with their original bytes), offsets (a partition's offset range of the usage topic) or "
        "unmatched (unmatched usage rated against the catalog). Replaying twice changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("--source", required=True, choices=ReplayRun.Source.values)
        parser.add_argument("--partition", type=int, help="offsets: the usage topic's partition.")
        parser.add_argument("--from-offset", type=int, help="offsets: the first offset.")
        parser.add_argument("--to-offset", type=int, help="offsets: the last offset (inclusive).")
        parser.add_argument("--tenant", type=int, help="Only this tenant id's records.")
        parser.add_argument("--limit", type=int, help="Read at most this many records (unmatched: rows).")
        parser.add_argument("--dry-run", action="store_true", help="Say what would happen; write nothing.")
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(self, *args, source, partition, from_offset, to_offset, tenant, limit, dry_run, json: bool, **options):
        params = {"partition": partition, "from_offset": from_offset, "to_offset": to_offset, "limit": limit}
        try:
            if dry_run:  # no run row: a dry run writes nothing
                replay_params_check(source=source, **params)
                report = replay_report(source=source, tenant_id=tenant, dry_run=True, progress=self._progress, **params)
            else:
                run = replay_run_create(source=source, tenant_id=tenant, requested_by="manage.py replay", **params)
                self.stdout.write(f"replay run {run.pk} ({source})")
                run = replay_run_execute(run_id=run.pk, progress=self._progress)
                report = run.report
        except ApiError as error:
            raise CommandError(f"{error.error_code}: {error.message}") from None
        self._render(report, as_json=json)

    def _progress(self, tally: ReplayTally) -> None:
        self.stdout.write(tally.progress_line())

    def _render(self, report: dict, *, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps(report, indent=2, sort_keys=True))
            return
        counts = ", ".join(f"{name.replace('_', ' ')} {count}" for name, count in report["counts"].items())
        prefix = "dry run: " if report.get("dry_run") else ""
        self.stdout.write(f"{prefix}{report['source']}: read {report.get('read', 0)}; {counts}")
        for reason, count in report.get("reasons", {}).items():
            self.stdout.write(f"  {reason}: {count}")
        if report.get("not_published"):
            self.stderr.write(f"rated, but not published: {report['not_published']['error']}")
