#!/usr/bin/env bash
# Starts the whole system (`ecoeco`, debug build) on spare ports with a database, AMQP prefix and
# Redis prefix of its own, and checks it from outside as a client would:
#   scripts/fuzz.sh            schemathesis against both APIs' specs
#   scripts/check-client.sh    the typed TypeScript client: drift, tsc, the example flow
#   scripts/check-contracts.sh the specs' validity (OpenAPI, AsyncAPI) and /docs in headless Chromium
# then stops it and drops the database. Every check runs; the exit status says whether all
# passed. Rate limits are lifted for the run (the fuzzer sends thousands of requests from one
# address; the limits have an end-to-end test of their own).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '[system-checks] %s\n' "$*"; }

: "${ECOECO_PYTHON:=$(scripts/python-env.sh)}"
export ECOECO_PYTHON
port=${FUZZ_PORT:-18081}
name="ecoeco_fuzz_$$"
base_url=${DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/ecoeco}
db_url="${base_url%/*}/$name"

cargo build --quiet --bin ecoeco
mkdir -p target/fuzz
say "starting ecoeco on 127.0.0.1:$port-$((port + 2)) (database $name)"
DATABASE_URL=$db_url AMQP_PREFIX="fuzz$$" REDIS_PREFIX="fuzz$$" BIND_ADDR="127.0.0.1:$port" \
  RATE_LIMIT_AUTH_PER_MIN=0 RATE_LIMIT_COMMANDS_PER_MIN=0 RATE_LIMIT_READS_PER_MIN=0 \
  RUST_LOG=${FUZZ_RUST_LOG:-warn} target/debug/ecoeco > target/fuzz/ecoeco.log 2>&1 &
pid=$!
cleanup() {
  set +e # best effort
  kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  psql "${base_url%/*}/postgres" -qc "drop database if exists $name with (force)" >/dev/null 2>&1
  scripts/drop-prefix.sh "fuzz$$" # the run's queues and keys too
}
trap cleanup EXIT

ready() { "$ECOECO_PYTHON" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" "$1" 2>/dev/null; }
for _ in $(seq 1 120); do
  if ready "http://127.0.0.1:$port/ready" && ready "http://127.0.0.1:$((port + 1))/ready"; then
    break
  fi
  kill -0 "$pid" 2>/dev/null || { say "ecoeco exited; see target/fuzz/ecoeco.log"; tail -n 20 target/fuzz/ecoeco.log; exit 1; }
  sleep 1
done
# What CI holds the servers to: no 5xx, every error problem+json, every status documented, every
# answer in its documented content type, schema and headers, and nothing the spec allows refused
# (positive_data_accepted, scripts/fuzz/hooks.py).
export FUZZ_CHECKS=${FUZZ_CHECKS:-not_a_server_error,problem_json,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance,positive_data_accepted}
command_url="http://127.0.0.1:$port"
query_url="http://127.0.0.1:$((port + 1))"
failed=()
ECOECO_DATABASE_URL=$db_url scripts/fuzz.sh "$command_url" "$query_url" || failed+=(fuzz)
COMMAND_API_URL=$command_url QUERY_API_URL=$query_url scripts/check-client.sh || failed+=(client)
COMMAND_API_URL=$command_url QUERY_API_URL=$query_url CONTRACTS_REQUIRE_DOCS=1 scripts/check-contracts.sh || failed+=(contracts)
if [ "${#failed[@]}" -gt 0 ]; then
  say "failed: ${failed[*]}"
  exit 1
fi
say "all passed"
