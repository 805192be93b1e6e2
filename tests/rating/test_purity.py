"""The rating engine is pure (STYLE.md §5): no Django, no database, no broker, no cache. Checked
twice: statically (no such import anywhere in the package, including lazy ones inside functions)
and at runtime (importing and quoting in a fresh interpreter with no Django settings loads none
of them)."""

import ast
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
RATING_DIR = REPO_ROOT / "billing" / "rating"
FORBIDDEN = ("django", "rest_framework", "psycopg", "redis", "confluent_kafka")

RUNTIME_PROBE = """
import json
import sys

import billing.rating
from billing.rating import quote

config = {"model": "graduated", "tiers": [{"up_to": "10", "unit_amount": "1"}, {"up_to": None, "unit_amount": "0.5"}]}
print(json.dumps({"amount": str(quote(config, "12")), "modules": sorted(sys.modules)}))
"""


def _imported_names(tree: ast.AST) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.append(node.module or "")
    return names


def test_no_module_of_the_package_imports_django_or_infrastructure():
    modules = sorted(RATING_DIR.glob("*.py"))
    assert modules, "billing/rating has no modules?"
    for path in modules:
        for name in _imported_names(ast.parse(path.read_text())):
            assert not name.startswith(FORBIDDEN), f"{path.name} imports {name}"


def test_importing_and_quoting_in_a_bare_interpreter_loads_no_django():
    env = {name: value for name, value in os.environ.items() if name != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-c", RUNTIME_PROBE],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert Decimal(report["amount"]) == Decimal(11)  # 10 × 1 + 2 × 0.5
    leaked = [name for name in report["modules"] if name.split(".")[0].startswith(FORBIDDEN)]
    assert leaked == []
