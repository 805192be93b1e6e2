"""The apps' layer order (.importlinter: aforo < catalog < notify < metering < wallets < billing <
consumers, billing.rating a pure library anyone may import) holds over the real import graph,
imports inside functions included. A deliberate back-arrow fails the check."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = str(Path(sys.executable).with_name("lint-imports"))


def lint(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([LINT, "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_the_layer_contracts_are_kept():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "3 kept, 0 broken" in result.stdout


def test_an_import_running_back_up_a_layer_breaks_the_contract(tmp_path):
    for name in (".importlinter", "aforo", "catalog", "notify", "metering", "wallets", "billing", "consumers"):
        source = ROOT / name
        (shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "migrations"))
         if source.is_dir() else shutil.copy(source, tmp_path / name))
    with open(tmp_path / "catalog" / "selectors_probe.py", "w") as probe:
        probe.write("def probe():\n    from wallets.models import Wallet  # catalog reaching up into wallets\n    return Wallet\n")
    result = lint(tmp_path)
    assert result.returncode != 0
    assert "catalog.selectors_probe -> wallets.models" in result.stdout
