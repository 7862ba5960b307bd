#!/usr/bin/env bash
# Checks the published contracts of EcoEco, with pinned tools:
#   1. docs/openapi/command-api.json and query-api.json are valid OpenAPI
#      (openapi-spec-validator from scripts/requirements.txt, in target/pyenv);
#   2. docs/asyncapi.yaml is valid AsyncAPI 3 for the official parser (@asyncapi/parser, pinned
#      with its lockfile in scripts/contracts/; scripts/contracts/validate-asyncapi.mjs);
#   3. /docs of the running APIs renders every operation in headless Chromium with no internet
#      (scripts/contracts/check_docs_page.py) when COMMAND_API_URL and QUERY_API_URL are set
#      (e.g. http://127.0.0.1:8081 and http://127.0.0.1:8082); skipped when unset, unless
#      CONTRACTS_REQUIRE_DOCS=1.
# Installs what is missing on a Debian machine: nodejs and npm (for 2), chromium (for 3).
# Environment: ECOECO_PYTHON (a Python with the requirements; default: scripts/python-env.sh).
# Prints one line per check and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
status=0
say() { printf '[contracts] %s\n' "$*"; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
apt_updated=""
apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    say "no apt-get: install $* by hand"; return 1
  fi
  say "installing $* (Debian packages)"
  if [ -z "$apt_updated" ]; then $SUDO apt-get update -qq >&2 && apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- 1. OpenAPI ---------------------------------------------------------------------------
PY=${ECOECO_PYTHON:-}
if [ -z "$PY" ]; then PY=$(scripts/python-env.sh) || { say "FAIL scripts/python-env.sh"; exit 1; }; fi
if ! "$PY" -c 'import openapi_spec_validator' 2>/dev/null; then
  echo "[openapi] FAIL $PY has no openapi-spec-validator (scripts/requirements.txt; run scripts/python-env.sh)"
  status=1
else
  osv=$("$PY" -c 'import openapi_spec_validator as m; print(m.__version__)')
  for spec in docs/openapi/command-api.json docs/openapi/query-api.json; do
    if [ ! -f "$spec" ]; then
      echo "[openapi] FAIL $spec is missing"; status=1; continue
    fi
    if out=$("$PY" -m openapi_spec_validator --validation-errors all "$spec" 2>&1); then
      ops=$("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d.get("openapi"), sum(m in ("get","put","post","delete","options","head","patch","trace") for p in d["paths"].values() for m in p))' "$spec")
      echo "[openapi] ok   $spec: valid OpenAPI ${ops% *}, ${ops#* } operations (openapi-spec-validator $osv)"
    else
      printf '%s\n' "$out" | sed 's/^/  /'
      echo "[openapi] FAIL $spec: rejected by openapi-spec-validator $osv (errors above)"; status=1
    fi
  done
fi

# --- 2. AsyncAPI --------------------------------------------------------------------------
contracts=scripts/contracts
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  apt_install nodejs npm || true
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "[asyncapi] FAIL node and npm are needed (Debian packages nodejs, npm)"; status=1
else
  want=$(sha256sum "$contracts/package-lock.json" | cut -d' ' -f1)
  stamp="$contracts/node_modules/.ecoeco-lock.sha256"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "npm ci in $contracts (node $(node --version))"
    # --ignore-scripts: nothing in the tree needs an install script (one only reports usage).
    if (cd "$contracts" && SCARF_ANALYTICS=false npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2); then
      echo "$want" > "$stamp"
    else
      echo "[asyncapi] FAIL npm ci in $contracts"; status=1
    fi
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    if [ ! -f docs/asyncapi.yaml ]; then
      echo "[asyncapi] FAIL docs/asyncapi.yaml is missing: generate it from the events catalogue"; status=1
    else
      node "$contracts/validate-asyncapi.mjs" docs/asyncapi.yaml || status=1
    fi
  fi
fi

# --- 3. /docs in headless Chromium ----------------------------------------------------------
if [ -z "${COMMAND_API_URL:-}" ] && [ -z "${QUERY_API_URL:-}" ]; then
  if [ "${CONTRACTS_REQUIRE_DOCS:-0}" = 1 ]; then
    echo "[docs] FAIL COMMAND_API_URL and QUERY_API_URL are unset (CONTRACTS_REQUIRE_DOCS=1)"; status=1
  else
    echo "[docs] skip /docs browser check: set COMMAND_API_URL and QUERY_API_URL (e.g. http://127.0.0.1:8081, http://127.0.0.1:8082) to a running system"
  fi
else
  chromium=$(command -v chromium || command -v chromium-browser || true)
  if [ -z "$chromium" ]; then
    apt_install chromium || true
    chromium=$(command -v chromium || true)
  fi
  if [ -z "$chromium" ]; then
    echo "[docs] FAIL no chromium (Debian package chromium)"; status=1
  else
    say "$("$chromium" --version 2>/dev/null)"
    for api in command query; do
      var="$(echo "$api" | tr a-z A-Z)_API_URL"
      if [ -z "${!var:-}" ]; then
        if [ "${CONTRACTS_REQUIRE_DOCS:-0}" = 1 ]; then
          echo "[docs] FAIL $api-api: $var is unset"; status=1
        else
          echo "[docs] skip $api-api /docs: $var is unset"
        fi
        continue
      fi
      "$PY" "$contracts/check_docs_page.py" --chromium "$chromium" "$api-api" "${!var}" "docs/openapi/$api-api.json" || status=1
    done
  fi
fi

if [ "$status" -eq 0 ]; then
  say "all contract checks passed in $(( $(date +%s) - started )) s"
else
  say "FAILED (see FAIL lines above) in $(( $(date +%s) - started )) s"
fi
exit "$status"
