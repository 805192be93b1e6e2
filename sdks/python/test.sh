#!/usr/bin/env bash
# The Python SDK's tests: build the package as pip would (an isolated build: pip fetches
# setuptools and wheel from PyPI, or its cache), install the wheel into a throwaway venv (the
# repository's .venv is never touched), then run pytest there against a running Aforo (the suite
# starts aforo.devserver.testplatform once). pytest and Django come from the repository's .venv.
# Offline, the build fails and the tests run from the source tree instead (PYTHONPATH=src).
set -euo pipefail
unset DJANGO_SETTINGS_MODULE  # its Django tests configure their own settings (scripts/test exports Aforo's)
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PY="$ROOT/.venv/bin/python"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/aforo-sdk-py.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

cd "$HERE"
# Built from a copy: setuptools leaves build/ and *.egg-info beside the sources it builds.
mkdir -p "$WORK/src" && cp -r "$HERE/pyproject.toml" "$HERE/README.md" "$HERE/src" "$WORK/src/"
if "$PY" -m pip wheel --quiet --no-deps --wheel-dir "$WORK/dist" "$WORK/src" >"$WORK/build.log" 2>&1; then
  "$PY" -m venv --without-pip "$WORK/venv"
  "$PY" -m pip --quiet --python "$WORK/venv/bin/python" install --no-deps --no-index "$WORK"/dist/aforo_sdk-*.whl
  # pytest and Django from the repository's .venv, after the throwaway venv's own packages.
  MAIN_SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  VENV_SITE="$("$WORK/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  echo "$MAIN_SITE" > "$VENV_SITE/aforo-main-venv.pth"
  TEST_PY="$WORK/venv/bin/python"
  # The tests must import the installed wheel (typed: py.typed shipped), not the source tree.
  (cd "$WORK" && "$TEST_PY" -c 'import aforo_sdk, pathlib; p = pathlib.Path(aforo_sdk.__file__).parent
assert "site-packages" in str(p) and (p / "py.typed").exists(), p; print("aforo_sdk installed from", p)')
else
  echo "test.sh: could not build the wheel (offline?); testing from the source tree" >&2
  tail -5 "$WORK/build.log" >&2
  export PYTHONPATH="$HERE/src"
  TEST_PY="$PY"
fi
AFORO_PYTHON="$PY" "$TEST_PY" -m pytest -p no:cacheprovider -q "${@:-tests}"  # arguments: a subset, e.g. tests/test_retry_policy.py
