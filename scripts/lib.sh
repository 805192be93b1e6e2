# Shared by scripts/dev and scripts/test: a virtualenv in .venv with the given requirements,
# reinstalled only when a requirements file changed.
ensure_venv() {
  local requirements="$1"
  local python="${PYTHON:-python3}"
  if [ ! -x .venv/bin/python ]; then
    echo "creating .venv with $($python --version)" >&2
    "$python" -m venv .venv
  fi
  local stamp=".venv/.installed-$(cat requirements*.txt | sha256sum | cut -c1-16)-$(basename "$requirements")"
  if [ ! -f "$stamp" ]; then
    echo "installing $requirements into .venv" >&2
    .venv/bin/python -m pip install --quiet --upgrade pip >&2
    .venv/bin/python -m pip install --quiet -r "$requirements" >&2
    rm -f .venv/.installed-*-"$(basename "$requirements")"
    touch "$stamp"
  fi
  # shellcheck disable=SC1091
  . .venv/bin/activate
}
