#!/usr/bin/env bash
# Sets up and runs the whole system on local defaults:
#   command-api http://127.0.0.1:8081   query-api http://127.0.0.1:8082   workers http://127.0.0.1:8083
# Migrations are applied and the RabbitMQ topology declared at start. Ctrl-C stops gracefully.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
exec cargo run --release --bin ecoeco
