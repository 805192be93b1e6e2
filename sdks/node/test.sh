#!/usr/bin/env bash
# The Node SDK's tests: unit tests (a local fake API) and the end-to-end suite against one
# testplatform (a whole Aforo, started by the suite). Installs Node 20+ and the dev
# dependencies when missing; quick when they are there.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
export AFORO_PYTHON="$ROOT/.venv/bin/python"

node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if ! command -v npm >/dev/null || [ "$(node_major)" -lt 20 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
if [ "$(node_major)" -lt 20 ]; then
  echo "sdks/node: Node.js >= 20 is required, found $(node --version 2>/dev/null || echo none)" >&2
  exit 1
fi
cd "$HERE"
if [ ! -d node_modules/express ] || [ ! -d node_modules/fastify ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
exec node --test --test-reporter=spec test/unit.test.mjs test/all.test.mjs
