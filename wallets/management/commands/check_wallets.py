"""`manage.py check_wallets [--wallet ID ...]`: the wallet invariant (balance == sum of the
ledger, held == sum of its held changes == what active holds still reserve). Prints each
problem and exits 1 if any; else prints "N wallets consistent" and exits 0."""

from django.core.management.base import BaseCommand, CommandError

from wallets.models import Wallet
from wallets.services import wallets_check


class Command(BaseCommand):
    help = "Check every wallet (or the given ones) against its ledger and active holds; exit 1 on any mismatch."

    def add_arguments(self, parser):
        parser.add_argument(
            "--wallet", type=int, action="append", dest="wallet_ids", metavar="ID",
            help="Check only this wallet (repeatable).",
        )

    def handle(self, *args, wallet_ids: list[int] | None = None, **options):
        if wallet_ids:
            found = set(Wallet.objects.filter(pk__in=wallet_ids).values_list("pk", flat=True))
            missing = sorted(set(wallet_ids) - found)
            if missing:
                raise CommandError(f"No wallet {', '.join(map(str, missing))}.")
            checked = len(found)
        else:
            checked = Wallet.objects.count()
        problems = wallets_check(wallet_ids=wallet_ids or None)
        if problems:
            for problem in problems:
                self.stdout.write(problem)
            raise CommandError(f"{len(problems)} problem(s) found in {checked} wallet(s) checked.")
        self.stdout.write(f"{checked} wallet{'' if checked == 1 else 's'} consistent")
