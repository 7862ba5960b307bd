#!/usr/bin/env bash
# Prepares target/pyenv, the Python of the checks: a virtualenv with every package pinned in
# scripts/requirements.txt (pika for examples/publish_scan.py, the chart and image tools).
# Installs python3 and python3-venv (Debian packages) where missing. Prints the interpreter's
# path on stdout; everything else goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '[python] %s\n' "$*" >&2; }
venv=target/pyenv
req=scripts/requirements.txt
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$req" | cut -d' ' -f1)

if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  echo "$PWD/$venv/bin/python"; exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
apt_install() {
  say "installing $* (Debian packages)"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >&2
}

command -v python3 >/dev/null 2>&1 || apt_install python3
mkdir -p target
if [ ! -x "$venv/bin/python" ]; then
  rm -rf "$venv"
  # Debian ships venv's ensurepip in a separate package: without it `python3 -m venv` fails
  # ("ensurepip is not available"). Show that error, install the package, try again.
  if ! err=$(python3 -m venv "$venv" 2>&1); then
    rm -rf "$venv"
    say "python3 -m venv failed: $(printf '%s' "$err" | tail -n 3)"
    command -v apt-get >/dev/null 2>&1 || { say "install the venv module of $(python3 --version) and run me again"; exit 1; }
    apt_install python3-venv
    python3 -m venv "$venv" >&2
  fi
fi
say "installing scripts/requirements.txt into $venv"
"$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$req" >&2
"$venv/bin/python" - >&2 <<'PY'
import pika
assert tuple(int(p) for p in pika.__version__.split(".")[:2]) >= (1, 3), f"pika {pika.__version__} < 1.3"
PY
echo "$want" > "$stamp"
echo "$PWD/$venv/bin/python"
