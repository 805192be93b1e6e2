#!/usr/bin/env bash
# What can run here of this gateway's policy: its structure, and its golden events through Aforo's own validator.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
exec "$ROOT/.venv/bin/python" -m pytest -q -c "$HERE/pytest.ini" --rootdir "$HERE" "$HERE/tests" "$@"
