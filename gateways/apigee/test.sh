#!/usr/bin/env bash
# Apigee: the shared flow's JavaScript under Node (a test double of Apigee's context), its events
# checked by Aforo's own validator.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
command -v node >/dev/null || { echo "node is required (Node.js 20)" >&2; exit 1; }
exec "$ROOT/.venv/bin/python" -m pytest -q -c "$HERE/pytest.ini" --rootdir "$HERE" "$HERE/tests" "$@"
