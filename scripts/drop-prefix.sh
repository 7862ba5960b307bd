#!/usr/bin/env bash
# Removes the queues and Redis keys of one run's prefix (the AMQP_PREFIX and REDIS_PREFIX a
# benchmark or check ran under), where rabbitmqctl and redis-cli are at hand. Best effort: what
# cannot be removed is left. Exchanges stay (rabbitmqctl cannot delete one; they hold nothing).
#
#   scripts/drop-prefix.sh PREFIX
set -u
prefix=${1:?usage: scripts/drop-prefix.sh PREFIX}
if command -v rabbitmqctl >/dev/null; then
  rabbitmqctl -q list_queues name 2>/dev/null | awk -v p="$prefix." 'index($0, p) == 1' | while read -r q; do
    rabbitmqctl -q delete_queue "$q" </dev/null >/dev/null 2>&1 # it reads stdin
  done
fi
if command -v redis-cli >/dev/null; then
  redis-cli --scan --pattern "$prefix:*" 2>/dev/null | xargs -r -d '\n' redis-cli del >/dev/null 2>&1
fi
exit 0
