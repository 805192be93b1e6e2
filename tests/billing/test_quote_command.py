"""manage.py quote: the amount and an aligned breakdown table, or with --json what the quote API
answers; bad input is a CommandError naming the field (one line, exit 1). No database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from billing.api.pricing import GRADUATED_CONFIG, GRADUATED_QUOTE, PERCENTAGE_CONFIG, PERCENTAGE_QUOTE
from billing.management.commands.quote import breakdown_table

ROOT = Path(__file__).resolve().parents[2]


def _quote(*args: str) -> str:
    out = StringIO()
    call_command("quote", *args, stdout=out)
    return out.getvalue()


def test_text_output_is_the_amount_and_an_aligned_table():
    printed = _quote("--config", json.dumps(GRADUATED_CONFIG), "--units", "12000").splitlines()
    assert printed[0] == "amount: 97  (graduated, 12000 units)"
    assert printed[1] == ""
    table = printed[2:]
    assert table[0].split() == ["description", "units", "unit", "amount", "flat", "amount"]
    assert set(table[1]) == {"-", " "}
    assert table[2].split("  ")[0] == "tier 1 (0, 1000]" and table[2].split()[-4:] == ["1000", "0.01", "0", "10"]
    assert table[4].split()[-4:] == ["2000", "0.005", "5", "15"]
    assert len({len(row) for row in table}) == 1  # numbers right-aligned to the same width
    assert "dimension key" not in "\n".join(printed)


def test_json_output_is_what_the_api_answers():
    as_json = _quote("--config", json.dumps(GRADUATED_CONFIG), "--units", "12000", "--json")
    assert json.loads(as_json) == GRADUATED_QUOTE
    per_transaction = _quote("--config", json.dumps(PERCENTAGE_CONFIG), "--events", "100, 50", "--json")
    assert json.loads(per_transaction) == PERCENTAGE_QUOTE


def test_config_from_a_file_and_dimensions_pick_an_override(tmp_path):
    config = {
        "model": "per_unit",
        "rate": "0.003",
        "overrides": [{"match": {"region": "eu"}, "price": {"model": "per_unit", "rate": "0.004"}}],
    }
    path = tmp_path / "price.json"
    path.write_text(json.dumps(config))
    printed = _quote("--config", f"@{path}", "--units", "1500", "--dimensions", "region=eu,tool_name=search")
    assert printed.splitlines()[:2] == ["amount: 6  (per_unit, 1500 units)", "dimension key: region=eu"]
    base = _quote("--config", f"@{path}", "--units", "1500")
    assert base.splitlines()[0] == "amount: 4.5  (per_unit, 1500 units)"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--config", '{"model": "graduated", "tiers": [{"up_to": "10", "unit_amount": "1"}, {"up_to": "5"}]}'],
            "invalid_config: config.tiers[1].up_to: the last tier must be unbounded: up_to null",
        ),
        (["--config", '{"model": "per_unit", "rate": 0.1}'], "invalid_config: config.rate: must be a decimal string"),
        (["--config", '{"model": "per_unit"'], "--config is not valid JSON"),
        (["--config", "@/nonexistent/price.json"], "--config file /nonexistent/price.json: cannot read it"),
        (["--config", json.dumps(PERCENTAGE_CONFIG), "--events", "1,x"], "invalid_usage: events[1]: must be a finite"),
        (
            ["--config", json.dumps(PERCENTAGE_CONFIG), "--units", "3", "--events", "1,1"],
            "invalid_usage: units: must equal",
        ),
        (["--config", json.dumps(PERCENTAGE_CONFIG), "--dimensions", "region"], "dimensions: expected name=value"),
    ],
)
def test_bad_input_is_a_command_error_naming_the_field(args, message):
    args = args if "--units" in args or "--events" in args else [*args, "--units", "1"]
    with pytest.raises(CommandError) as raised:
        _quote(*args)
    assert str(raised.value).startswith(message)


def test_a_bad_config_exits_non_zero_with_one_line():
    result = subprocess.run(
        [sys.executable, "manage.py", "quote", "--config", '{"model": "banana"}', "--units", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "aforo.settings.test"},
    )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("CommandError: invalid_config: config.model: unknown pricing model 'banana'")


def test_breakdown_table_leaves_absent_values_blank():
    rows = breakdown_table([{"description": "period minimum fee 10", "amount": "9.5"}])
    assert rows[2].split() == ["period", "minimum", "fee", "10", "9.5"]
    assert len(rows[0]) == len(rows[2])
