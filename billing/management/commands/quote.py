"""manage.py quote: what a pricing config charges for some usage, with its breakdown — the
same answer as POST /api/v1/pricing/quote, computed locally (no database)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from billing.pricing import QuoteInputError, pricing_quote

COLUMNS = (
    ("description", "description"),
    ("units", "units"),
    ("unit amount", "unit_amount"),
    ("flat", "flat_amount"),
    ("amount", "amount"),
)


def _config_arg(raw: str) -> Any:
    """`--config`: JSON, or `@path` to a file holding it. Floats stay floats: the engine refuses them."""
    source = "--config"
    if raw.startswith("@"):
        path = Path(raw[1:]).expanduser()
        source = f"--config file {path}"
        try:
            raw = path.read_text(encoding="utf-8")
        except OSError as error:
            raise CommandError(f"{source}: cannot read it ({error.strerror or error})") from None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as error:
        raise CommandError(f"{source} is not valid JSON: {error}") from None


def _list_arg(raw: str | None) -> list[str] | None:
    return None if raw is None else [item.strip() for item in raw.split(",")]


def _dimensions_arg(raw: str | None) -> dict[str, str] | None:
    if raw is None:
        return None
    dimensions: dict[str, str] = {}
    for pair in _list_arg(raw) or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise CommandError(f"dimensions: expected name=value pairs separated by commas, got {pair!r}")
        dimensions[name.strip()] = value.strip()
    return dimensions


def breakdown_table(lines: list[dict[str, Any]]) -> list[str]:
    """The breakdown lines as an aligned text table: description left, numbers right."""
    rows = [[line.get(key) or "" for _, key in COLUMNS] for line in lines]
    rows = [[str(cell) for cell in row] for row in rows]
    header = [title for title, _ in COLUMNS]
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=False)]

    def render(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        return "  ".join([first, *(cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))])

    return [render(header), "  ".join("-" * width for width in widths), *(render(row) for row in rows)]


class Command(BaseCommand):
    help = (
        "Quote a pricing config for some usage with the rating engine: the exact amount and its breakdown. "
        'Example: quote --config \'{"model": "per_unit", "rate": "0.003"}\' --units 1000'
    )
    requires_system_checks: tuple[str, ...] = ()

    def add_arguments(self, parser):
        parser.add_argument("--config", required=True, help="The pricing config as JSON, or @path to a JSON file.")
        parser.add_argument("--units", help="Usage in the period (a decimal). Optional with --events: their sum.")
        parser.add_argument("--events", help="Transaction amounts in arrival order, comma-separated (percentage).")
        parser.add_argument("--dimensions", help="Event dimensions picking an override: name=value,name2=value2.")
        parser.add_argument("--json", action="store_true", help="Print what POST /api/v1/pricing/quote answers.")

    def handle(self, *args, **options):
        try:
            answer = pricing_quote(
                config=_config_arg(options["config"]),
                units=options["units"],
                events=_list_arg(options["events"]),
                dimensions=_dimensions_arg(options["dimensions"]),
            )
        except QuoteInputError as error:
            raise CommandError(f"{error.code}: {error.field}: {error.message}") from None
        if options["json"]:
            self.stdout.write(json.dumps(answer, indent=2, ensure_ascii=False))
            return
        self.stdout.write(f"amount: {answer['amount']}  ({answer['model']}, {answer['units']} units)")
        if answer["dimension_key"]:
            self.stdout.write(f"dimension key: {answer['dimension_key']}")
        self.stdout.write("")
        for row in breakdown_table(answer["breakdown"]):
            self.stdout.write(row.rstrip())
