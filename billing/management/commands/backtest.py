"""manage.py backtest: what a metric's historical usage would have cost under a candidate price,
against what it was charged — per customer and period, totals and the winners and losers (the
same answer as POST /api/v1/pricing/backtest; --json prints it).

    manage.py backtest --tenant acme --config @new.json --metric api_calls --from 2026-01 --to 2026-03 [--plan 7]"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from billing.backtest import BacktestInputError, pricing_backtest
from catalog.models import Tenant

from .quote import _config_arg

ROW_COLUMNS = (("customer", "customer_name"), ("period", "period_start"), ("events", "events"), ("units", "units"),
               ("charged", "charged"), ("candidate", "candidate"), ("difference", "difference"), ("change %", "change_percent"))


def _tenant(raw: str) -> Tenant:
    tenant = Tenant.objects.filter(pk=int(raw)).first() if raw.isdigit() else Tenant.objects.filter(slug=raw).first()
    if tenant is None:
        raise CommandError(f"--tenant: no tenant with id or slug {raw!r}")
    return tenant


def table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """An aligned text table: the first column left, the others right."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=False)]

    def render(cells: list[str]) -> str:
        return "  ".join([cells[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))]).rstrip()

    return [render(headers), "  ".join("-" * w for w in widths), *(render(row) for row in rows)]


def report_lines(answer: dict[str, Any]) -> list[str]:
    plan = f", plan {answer['plan']}" if answer["plan"] else ""
    out = [f"backtest of {answer['metric']}{plan}: periods starting {answer['from']} to {answer['to']}, "
           f"{answer['events']:,} events{' (priced per transaction)' if answer['priced_per_transaction'] else ''}", ""]
    rows = [[f"{row['customer_name']} (#{row['customer']})" if key == "customer_name" else
             row["period_start"][:10] if key == "period_start" else
             f"{row[key]} {row['currency']}" if key in ("charged", "candidate", "difference") else
             str(row[key] if row[key] is not None else "—") for _, key in ROW_COLUMNS] for row in answer["rows"]]
    out += table([title for title, _ in ROW_COLUMNS], rows) if rows else ["no rated usage in the range"]
    out.append("")
    for total in answer["totals"]:
        change = f" ({total['change_percent']}%)" if total["change_percent"] is not None else ""
        out.append(f"total {total['currency']}: charged {total['charged']}, candidate {total['candidate']}, "
                   f"difference {total['difference']}{change}, {total['customers']} customers")
    dist = answer["distribution"]
    out.append(f"customers better off {dist['better_off']}, worse off {dist['worse_off']}, unchanged {dist['unchanged']}")
    out += [f"  {bucket['bucket']:>16}  {bucket['customers']:>6}  {'#' * min(bucket['customers'], 50)}".rstrip()
            for bucket in dist["histogram"]]
    return out


class Command(BaseCommand):
    help = "Backtest a candidate price over a metric's rated usage: what each customer would have paid, against what they were charged."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="The tenant's id or slug.")
        parser.add_argument("--config", required=True, help="The candidate pricing config as JSON, or @path to a JSON file.")
        parser.add_argument("--metric", required=True, help="The metric's code, e.g. api_calls.")
        parser.add_argument("--plan", type=int, help="Only subscriptions rated on this rate plan (its id).")
        parser.add_argument("--from", dest="start", required=True, help="First month (YYYY-MM, UTC) of the periods' starts.")
        parser.add_argument("--to", dest="end", required=True, help="Last month (YYYY-MM, UTC) of the periods' starts.")
        parser.add_argument("--json", action="store_true", help="Print what POST /api/v1/pricing/backtest answers.")

    def handle(self, *args, **options):
        tenant = _tenant(options["tenant"])
        try:
            answer = pricing_backtest(
                tenant_id=tenant.pk, config=_config_arg(options["config"]), metric=options["metric"], plan=options["plan"],
                start=options["start"], end=options["end"],
            )
        except BacktestInputError as error:
            raise CommandError(f"{error.code}: {error.field}: {error.message}") from None
        if options["json"]:
            self.stdout.write(json.dumps(answer, indent=2, ensure_ascii=False))
            return
        for line in report_lines(answer):
            self.stdout.write(line)
