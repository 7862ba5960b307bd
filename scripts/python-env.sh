#!/usr/bin/env bash
# Prepares the Python that runs examples/publish_scan.py (the published contract's example, run
# by the end-to-end tests against the real broker): a virtualenv in target/pyenv with pika from
# PyPI, or Debian's python3-pika when venv/pip are not available. Prints the interpreter's path.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '[python] %s\n' "$*" >&2; }
venv=target/pyenv

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import pika' 2>/dev/null; then
  echo "$PWD/$venv/bin/python"; exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if ! command -v python3 >/dev/null 2>&1; then
  say "installing python3 (Debian package)"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3 >/dev/null
fi
mkdir -p target
if python3 -m venv "$venv" >/dev/null 2>&1 && "$venv/bin/pip" install -q pika==1.3.2 >&2; then
  say "pika installed in $venv"
  echo "$PWD/$venv/bin/python"; exit 0
fi
rm -rf "$venv"
if ! python3 -c 'import pika' 2>/dev/null; then
  say "installing python3-pika (Debian package)"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-pika >/dev/null
fi
command -v python3
