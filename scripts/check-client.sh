#!/usr/bin/env bash
# Checks the typed TypeScript client in clients/typescript/ against the committed OpenAPI
# documents (docs/openapi/*.json):
#   - node and npm are there (Debian's `nodejs` and `npm` are installed when missing);
#   - package.json pins every dependency exactly, and `npm ci` installs from package-lock.json;
#   - `npm run generate` reproduces the committed src/generated/*.ts byte for byte (no drift
#     between the specs and the client; the work tree is left as it was);
#   - `tsc` (strict) compiles the client and the example flow;
#   - when COMMAND_API_URL and QUERY_API_URL are set: the example flow runs against that live
#     system (register, scans, profile read with the consistency token, activity paging).
# Prints one line per check and exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '[client] %s\n' "$*"; }
fail() { say "FAIL $*"; exit 1; }
dir=clients/typescript

# Node and npm: Debian's packages when missing (like scripts/system-deps.sh does for gcc).
missing=()
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ "${#missing[@]}" -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 || fail "no ${missing[*]} and no apt-get to install them"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  say "installing ${missing[*]} (Debian packages)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 18 ] || fail "node $(node --version) is too old: the client needs 18 or newer (global fetch)"
say "ok   node $(node --version), npm $(npm --version 2>/dev/null)"

cd "$dir"
npm_() { npm --loglevel=error --no-audit --no-fund "$@"; }

# Exact pins: no ranges in package.json (the lockfile pins the transitive ones).
node -e '
  const p = require("./package.json");
  const all = {...p.dependencies, ...p.devDependencies};
  const loose = Object.entries(all).filter(([, v]) => !/^\d+\.\d+\.\d+$/.test(v));
  if (loose.length) { console.error("not pinned exactly: " + loose.map(([n, v]) => n + "@" + v).join(", ")); process.exit(1); }
  console.log("[client] ok   pinned " + Object.entries(all).map(([n, v]) => n + "@" + v).join(", "));
' || fail "package.json has version ranges"

npm_ ci >/dev/null || fail "npm ci in $dir"
say "ok   npm ci ($(node -p 'Object.keys(require("./package-lock.json").packages).length - 1') packages from package-lock.json)"

# Drift: regenerate in place, compare with what is committed, then put the committed files back.
saved=$(mktemp -d)
trap 'cp -p "$saved"/*.ts src/generated/ 2>/dev/null; rm -rf "$saved"' EXIT
cp -p src/generated/*.ts "$saved"/
npm_ run --silent generate >/dev/null 2>"$saved/generate.log" || { cat "$saved/generate.log" >&2; fail "npm run generate"; }
drift=0
for f in command-api query-api; do
  if ! diff -u "$saved/$f.ts" "src/generated/$f.ts" >"$saved/$f.diff"; then
    head -40 "$saved/$f.diff"
    say "FAIL $dir/src/generated/$f.ts differs from what docs/openapi/$f.json generates: run \`npm run generate\` in $dir and commit"
    drift=1
  else
    say "ok   src/generated/$f.ts matches docs/openapi/$f.json ($(node_modules/.bin/openapi-typescript --version 2>/dev/null | grep -Eo '[0-9]+\.[0-9]+\.[0-9]+' | head -1 || true))"
  fi
done
[ "$drift" -eq 0 ] || exit 1

rm -rf dist
npm_ run --silent build || fail "tsc"
say "ok   tsc $(node_modules/.bin/tsc --version | grep -Eo '[0-9.]+$') (strict) compiles src/ and examples/flow.ts"

if [ -n "${COMMAND_API_URL:-}" ] && [ -n "${QUERY_API_URL:-}" ]; then
  say "running the example flow against $COMMAND_API_URL and $QUERY_API_URL"
  npm_ run --silent flow || fail "example flow against the live system"
  say "ok   example flow: register, scans, profile with the consistency token, activity paging"
else
  say "skip example flow: set COMMAND_API_URL and QUERY_API_URL to run it against a live system"
fi
