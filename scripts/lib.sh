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
  _apt_install "$@"
}

# Debian packages that bring no command to look for (libraries, fonts), installed with apt-get
# when dpkg does not list one of them as installed (same rules as ensure_apt_packages):
#   ensure_debian_packages $PDF_DEBIAN_PACKAGES
ensure_debian_packages() {
  local package missing=""
  if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "not a Debian system: install the equivalents of $* yourself" >&2
    return 0
  fi
  for package in "$@"; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null)" = "installed" ] || missing="$missing $package"
  done
  [ -z "$missing" ] && return 0
  if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "missing Debian packages:$missing — install them with apt-get" >&2
    return 0
  fi
  echo "installing Debian packages:$missing" >&2
  # shellcheck disable=SC2086
  _apt_install $missing
}

# What WeasyPrint (the invoice PDF, billing.invoice_pdf) loads at run time: Pango and its
# FreeType backend, HarfBuzz's font subsetter, and a font with Latin, Greek and Cyrillic (the
# template's DejaVu Sans). Without them the PDF routes answer 503 pdf_unavailable.
PDF_DEBIAN_PACKAGES="libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core"

_apt_install() {
  if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 &&
         DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2; }; then
    echo "apt-get could not install $* — what needs them will be skipped or unavailable" >&2
  fi
  return 0
}
