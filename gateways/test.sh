#!/usr/bin/env bash
# The gateway plugins' tests: busted specs of the shared Lua core and of the Kong handler (against
# a double of Kong's PDK), then the nginx + Lua integration test against a real Aforo (the
# testplatform, started once by the pytest session). Installs what it needs when missing.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
PYTHON="$ROOT/.venv/bin/python"

missing=()
command -v busted >/dev/null || missing+=(lua-busted)
command -v nginx >/dev/null || missing+=(nginx)
ls /usr/lib/nginx/modules/ngx_http_lua_module.so /usr/share/nginx/modules/ngx_http_lua_module.so >/dev/null 2>&1 \
  || missing+=(libnginx-mod-http-lua)
lua -e 'require "cjson"' >/dev/null 2>&1 || missing+=(lua-cjson)
if [ ${#missing[@]} -gt 0 ]; then
  echo "gateways/test.sh: installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cd "$HERE"
echo "== busted: lua core + kong handler"
busted --lpath='lua/?.lua;kong/?.lua' lua/spec kong/spec
echo "== nginx-lua against the testplatform"
AFORO_PYTHON="$PYTHON" "$PYTHON" -m pytest -q -p no:cacheprovider nginx-lua/tests
