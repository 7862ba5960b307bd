#!/usr/bin/env bash
# Makes sure PostgreSQL, Redis and RabbitMQ answer on their standard local ports.
#
# Already running: nothing to do. A Docker engine available: `docker compose up` of those three
# services. Otherwise the Debian packages are installed where missing and the servers started
# directly (works with or without systemd, as root or through sudo). First, the build and test
# prerequisites a machine with only Rust lacks (scripts/system-deps.sh: gcc, python3-venv).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/system-deps.sh

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
all_up() { port_open 5432 && port_open 6379 && port_open 5672; }
say() { printf '[services] %s\n' "$*"; }

wait_for() { # name port seconds
  for _ in $(seq 1 "$3"); do port_open "$2" && return 0; sleep 1; done
  say "$1 did not open port $2 within $3 s"; return 1
}

if all_up; then
  say "PostgreSQL, Redis and RabbitMQ are up"
  exit 0
fi

if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  say "starting PostgreSQL, Redis and RabbitMQ with docker compose"
  docker compose up -d --wait postgres redis rabbitmq
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
port_open 5432 || ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
port_open 6379 || command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
port_open 5672 || command -v rabbitmq-server >/dev/null 2>&1 || missing+=(rabbitmq-server)
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]} (Debian packages)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! port_open 5432; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  say "starting PostgreSQL $version"
  (cd / && { $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start || $SUDO pg_ctlcluster "$version" main start; })
fi
if ! port_open 6379; then
  say "starting Redis"
  $SUDO redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
fi
if ! port_open 5672; then
  say "starting RabbitMQ"
  (cd / && $SUDO rabbitmq-server -detached)
fi
wait_for PostgreSQL 5432 60
wait_for Redis 6379 30
wait_for RabbitMQ 5672 120
command -v rabbitmqctl >/dev/null 2>&1 && $SUDO rabbitmqctl -q await_startup >/dev/null 2>&1 || true

# A fresh Debian cluster authenticates TCP clients by password; give `postgres` the local
# default one (postgres/postgres) when it has none that works.
if command -v psql >/dev/null 2>&1 && ! PGPASSWORD=postgres psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1; then
  say "setting the local development password of the postgres role"
  # From /: the postgres user may not be allowed into the checkout's directory.
  if [ "$(id -u)" -eq 0 ]; then
    (cd / && runuser -u postgres -- psql -q -c "alter role postgres password 'postgres'")
  else
    (cd / && sudo -u postgres psql -q -c "alter role postgres password 'postgres'")
  fi
fi
say "PostgreSQL, Redis and RabbitMQ are up"
