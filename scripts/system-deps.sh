#!/usr/bin/env bash
# Installs what building and testing EcoEco needs beyond Rust on a Debian machine that has
# only rustup: a C compiler, make and the C library's development files (rustc links through
# `cc`, `ring` compiles C, the jemalloc allocator builds with make), python3 with its venv module (scripts/python-env.sh). Nothing else
# is needed: TLS is rustls and no crate links a system library through pkg-config.
# Does nothing when all of it is there. Called by scripts/services.sh.
set -euo pipefail
say() { printf '[deps] %s\n' "$*"; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }

if ! command -v dpkg-query >/dev/null 2>&1; then
  command -v cc >/dev/null 2>&1 || say "no C compiler (cc) found: install gcc to build"
  command -v make >/dev/null 2>&1 || say "no make found: install it to build (jemalloc)"
  exit 0
fi
missing=()
command -v cc >/dev/null 2>&1 || missing+=(gcc)
command -v make >/dev/null 2>&1 || missing+=(make)
installed libc6-dev || missing+=(libc6-dev)
# Debian's python3 needs python3-venv for `python3 -m venv` (another python3 brings its own).
if ! command -v python3 >/dev/null 2>&1; then
  missing+=(python3 python3-venv)
elif [ "$(command -v python3)" = /usr/bin/python3 ] && ! installed python3-venv; then
  missing+=(python3-venv)
fi
[ "${#missing[@]}" -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
say "installing ${missing[*]} (Debian packages)"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
