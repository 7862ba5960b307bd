#!/usr/bin/env bash
# Runs every check and test: formatting, clippy, unit tests and the end-to-end suite against
# real PostgreSQL, Redis and RabbitMQ (started or installed by scripts/services.sh).
# Tests isolate themselves (own database, AMQP prefix and Redis prefix) and run in parallel.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
ECOECO_PYTHON=$(scripts/python-env.sh)
export ECOECO_PYTHON
started=$(date +%s)
echo "[test] cargo fmt --check"
cargo fmt --all --check
echo "[test] cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "[test] cargo test"
set +e
cargo test --workspace --quiet "$@" 2>&1 | tee /tmp/ecoeco-test-$$.log
status=${PIPESTATUS[0]}
set -e
passed=$(grep -Eo '^test result: [a-z]+\. [0-9]+ passed' /tmp/ecoeco-test-$$.log | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' /tmp/ecoeco-test-$$.log | awk '{s+=$1} END {print s+0}')
rm -f /tmp/ecoeco-test-$$.log
echo "[test] finished in $(( $(date +%s) - started )) s"
echo "${passed} passed, ${failed} failed"
exit "$status"
