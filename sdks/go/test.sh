#!/usr/bin/env bash
# The Go SDK's tests: unit tests, then end to end against a whole Aforo (the testplatform, started
# once by TestMain with $ROOT/.venv/bin/python). Installs Debian's golang-go if go is missing.
# Offline: standard library only, GOPROXY=off; the build cache lives under /tmp.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

if ! command -v go >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq golang-go >/dev/null
fi

export GOPROXY=off GOFLAGS=-mod=mod GOTOOLCHAIN=local
export GOCACHE="${GOCACHE:-/tmp/aforo-go-cache}" GOPATH="${GOPATH:-/tmp/aforo-go-path}"
export AFORO_PYTHON="${AFORO_PYTHON:-$ROOT/.venv/bin/python}"

cd "$HERE"
go vet ./...
go test -count=1 -timeout 240s "$@" ./...
