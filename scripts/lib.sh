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

# Debian packages a script needs, installed with apt-get when one of their commands is missing:
#   ensure_apt_packages "chromium chromedriver" chromium chromium-driver
# (the commands to look for, then the packages). Installs only as root (CI and the dev machines
# run as root); otherwise, or when apt-get fails, it says so and returns 0: the caller's tests
# decide what to do without them (the browser tests skip, naming the reason).
ensure_apt_packages() {
  local commands="$1"
  shift
  local command missing=""
  for command in $commands; do
    command -v "$command" >/dev/null 2>&1 || missing="$missing $command"
  done
  [ -z "$missing" ] && return 0
  if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "missing:$missing — install the Debian packages: $*" >&2
    return 0
  fi
  echo "installing Debian packages for$missing: $*" >&2
  if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 &&
         DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2; }; then
    echo "apt-get could not install $* — the tests that need them will be skipped" >&2
  fi
  return 0
}
