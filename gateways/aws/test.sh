#!/usr/bin/env bash
# The AWS API Gateway Lambda's tests, against a running Aforo (aforo.devserver.testplatform).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$HERE"
exec "$ROOT/.venv/bin/python" -m pytest -q -c "$HERE/pytest.ini" --rootdir "$HERE" "$HERE/tests" "$@"
