#!/usr/bin/env bash
# Runs `ecoeco-bench sustained` against a fresh release build of the whole system (`ecoeco`,
# all roles in one process), then stops it.
#
#   scripts/bench-sustained.sh                       # 60 s steps from 200 req/s, ×1.5
#   scripts/bench-sustained.sh --step-secs 20 --rate 400
#
# Every scan pays (SCAN_DAILY_CAP=1000000) and rate limits are off, so the figures are the
# pipeline's, not the abuse limits'. Arguments go to `ecoeco-bench sustained`.
#
# Each run gets a database, queues and keys of its own (named after the run), so no run starts
# with what an earlier one left: a bigger history, or messages still queued. They are removed
# at the end where psql, rabbitmqctl and redis-cli are at hand (BENCH_KEEP=1 keeps them;
# scripts/drop-prefix.sh removes the queues and keys).
# BENCH_DATABASE_SERVER names another PostgreSQL server (a URL without a database).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh >/dev/null
cargo build --release -q -p ecoeco -p bench

run="$(date +%Y%m%d%H%M%S)_$$"
server="${BENCH_DATABASE_SERVER:-postgres://postgres:postgres@127.0.0.1:5432}"
export DATABASE_URL="$server/ecoeco_sustained_$run"
export AMQP_PREFIX="bench-$run" REDIS_PREFIX="bench-$run" BIND_ADDR=127.0.0.1:18181
echo "run $run: database ecoeco_sustained_$run, queues $AMQP_PREFIX.*, Redis keys $REDIS_PREFIX:*"
export SCAN_DAILY_CAP=1000000 RATE_LIMIT_AUTH_PER_MIN=0 RATE_LIMIT_COMMANDS_PER_MIN=0 RATE_LIMIT_READS_PER_MIN=0
export RUST_LOG="${RUST_LOG:-warn}"

target/release/ecoeco >target/bench-sustained-ecoeco.log 2>&1 &
system=$!
clean_up() {
  set +e # best effort, whatever is missing
  kill -TERM $system 2>/dev/null; wait $system 2>/dev/null
  [ -z "${BENCH_KEEP:-}" ] || { echo "kept run $run's database, queues and keys (BENCH_KEEP)"; return; }
  if command -v psql >/dev/null; then
    psql -q "$server/postgres" -c "drop database if exists \"ecoeco_sustained_$run\" with (force)"
  fi
  scripts/drop-prefix.sh "$AMQP_PREFIX"
}
trap clean_up EXIT
ready() { # query-api's /ready answers 200 within 2 s (no curl needed)
  local status=""
  { exec 3<>/dev/tcp/127.0.0.1/18182 && printf 'GET /ready HTTP/1.0\r\n\r\n' >&3 && read -r -t 2 _ status _ <&3; } 2>/dev/null
  exec 3<&- 2>/dev/null || true
  [ "$status" = 200 ]
}
up=""
for _ in $(seq 1 120); do
  if ready; then up=1; break; fi
  kill -0 $system 2>/dev/null || { echo "ecoeco did not start; see target/bench-sustained-ecoeco.log"; exit 1; }
  sleep 1
done
[ -n "$up" ] || { echo "ecoeco was not ready within 120 s; see target/bench-sustained-ecoeco.log"; exit 1; }

target/release/ecoeco-bench --command-url http://127.0.0.1:18181 --query-url http://127.0.0.1:18182 \
  sustained --metrics-url http://127.0.0.1:18183/metrics "$@"
