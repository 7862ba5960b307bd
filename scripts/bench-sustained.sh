#!/usr/bin/env bash
# Runs `ecoeco-bench sustained` against a fresh release build of the whole system (`ecoeco`,
# all roles in one process) on its own database, queues and keys, then stops it.
#
#   scripts/bench-sustained.sh                       # 60 s steps from 200 req/s, ×1.5
#   scripts/bench-sustained.sh --step-secs 20 --rate 400
#
# Every scan pays (SCAN_DAILY_CAP=1000000) and rate limits are off, so the figures are the
# pipeline's, not the abuse limits'. Arguments go to `ecoeco-bench sustained`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh >/dev/null
cargo build --release -q -p ecoeco -p bench

export DATABASE_URL="${BENCH_DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/ecoeco_sustained}"
export AMQP_PREFIX=bench REDIS_PREFIX=bench BIND_ADDR=127.0.0.1:18181
export SCAN_DAILY_CAP=1000000 RATE_LIMIT_AUTH_PER_MIN=0 RATE_LIMIT_COMMANDS_PER_MIN=0 RATE_LIMIT_READS_PER_MIN=0
export RUST_LOG="${RUST_LOG:-warn}"

target/release/ecoeco >target/bench-sustained-ecoeco.log 2>&1 &
system=$!
trap 'kill -TERM $system 2>/dev/null; wait $system 2>/dev/null || true' EXIT
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
