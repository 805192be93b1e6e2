#!/usr/bin/env bash
# The README's figures: events/s one process emits and the filter's added latency (p50/p99),
# against a real testplatform. Not part of test.sh (it takes ~1 min and loads the machine).
# Usage: ./bench.sh [events]   (default 200000)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
JARS=/usr/share/java
"$HERE/test.sh" -c io.aforo.sdk.UnitTest >/dev/null  # builds build/main and build/test (and installs what is missing)
java -Daforo.root="$ROOT" -Daforo.python="$ROOT/.venv/bin/python" \
  -Djava.util.logging.config.file="$HERE/src/test/resources/logging.properties" \
  -cp "$HERE/build/main:$HERE/build/test:$JARS/jakarta-servlet-api.jar" io.aforo.sdk.Bench "$@"
