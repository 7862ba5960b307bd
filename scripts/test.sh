#!/usr/bin/env bash
# Runs every check and test: formatting, clippy, unit tests and the end-to-end suite against
# real PostgreSQL, Redis and RabbitMQ (started or installed by scripts/services.sh), the chart
# and image checks, and, against the whole system running, schemathesis, the TypeScript client,
# the OpenAPI and AsyncAPI validators and /docs in headless Chromium.
# Tests isolate themselves (own database, AMQP prefix and Redis prefix) and run in parallel.
# Every stage runs even when an earlier one failed; the last line sums up, and the exit status
# is non-zero when anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
set -e
scripts/services.sh
ECOECO_PYTHON=$(scripts/python-env.sh)
export ECOECO_PYTHON
set +e
started=$(date +%s)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
failures=()

echo "[test] cargo fmt --check"
cargo fmt --all --check || failures+=(fmt)
echo "[test] cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings || failures+=(clippy)
echo "[test] cargo test"
cargo test --workspace --no-fail-fast --quiet "$@" 2>&1 | tee "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || failures+=("cargo test")
# `test result: ok. 12 passed; 0 failed; ...` or `test result: FAILED. 55 passed; 2 failed; ...`
passed=$(grep -Eo '^test result: [A-Za-z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '^test result: [A-Za-z]+\. [0-9]+ passed; [0-9]+ failed' "$log" | awk '{s+=$6} END {print s+0}')

echo "[test] chart and image checks"
scripts/check-chart.sh || failures+=(chart)

echo "[test] the running system: schemathesis, the TypeScript client, the contracts, /docs"
scripts/system-checks.sh || failures+=("system checks")

echo "[test] finished in $(( $(date +%s) - started )) s"
if [ "${#failures[@]}" -gt 0 ]; then
  echo "[test] failed stages: ${failures[*]}"
  # A failing stage that is not a test still counts once, so the line never reads all-green.
  [ "$failed" -eq 0 ] && failed=1
fi
echo "${passed} passed, ${failed} failed"
[ "${#failures[@]}" -eq 0 ]
