"""manage.py verify_ledger: check every ledger invariant (billing.verification.ledger_verify);
exit 0 when all hold, otherwise print each problem and exit 1."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from billing.verification import ledger_verify


class Command(BaseCommand):
    help = (
        "Check the ledger's invariants: invoice totals and rounding, usage lines against their rated events, "
        "settled periods fully covered, running totals against the rated ledger, wallet balances. "
        "Exits non-zero naming what is off."
    )

    def handle(self, *args, **options):
        problems = ledger_verify()
        if problems:
            for problem in problems:
                self.stderr.write(problem)
            raise CommandError(f"ledger verification failed: {len(problems)} problem(s), listed above")
        self.stdout.write("ledger OK: every invariant holds")
