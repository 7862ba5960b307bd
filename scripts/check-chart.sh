#!/usr/bin/env bash
# Offline checks of what deploys EcoEco, with pinned tools from scripts/requirements.txt (in
# target/pyenv): no cluster, no Docker engine, no helm binary.
#   - charts/ecoeco (scripts/check_chart.py): helm lint --strict and helm template with the
#     default and production values (Helm v4 SDK), kubernetes-validate --strict against two
#     Kubernetes versions, Pod Security "restricted" on every pod, what the chart promises
#     (roles, probes, hooks, HPA, alerts, ...), values that must be refused;
#   - Dockerfile: hadolint;
#   - docker-compose.yml: the whole system, wired as documented (`docker compose config` too
#     when a compose client is installed).
# Prints one line per check and exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
PY=$(scripts/python-env.sh)
bin=$(dirname "$PY")
status=0

"$PY" scripts/check_chart.py "$@" || status=1

if "$bin/hadolint" --failure-threshold warning Dockerfile; then
  echo "[image] ok   hadolint $("$bin/hadolint" --version | grep -Eo '[0-9]+\.[0-9]+\.[0-9]+') Dockerfile"
else
  echo "[image] FAIL hadolint Dockerfile"; status=1
fi
for f in ops/docker/healthcheck scripts/*.sh; do bash -n "$f" || { echo "[image] FAIL bash -n $f"; status=1; }; done

"$PY" - <<'PY' || status=1
import sys, yaml
c = yaml.safe_load(open("docker-compose.yml"))["services"]
bad = []
want = ["postgres", "redis", "rabbitmq", "migrate", "seed", "command-api", "query-api", "workers"]
if sorted(c) != sorted(want):
    bad.append(f"services {sorted(c)}")
for s in ("postgres", "redis", "rabbitmq"):
    if "healthcheck" not in c.get(s, {}):
        bad.append(f"{s} has no healthcheck")
cond = lambda s, dep: (c.get(s, {}).get("depends_on") or {}).get(dep, {}).get("condition")
if cond("migrate", "postgres") != "service_healthy" or cond("migrate", "rabbitmq") != "service_healthy":
    bad.append("migrate does not wait for healthy postgres and rabbitmq")
if cond("seed", "migrate") != "service_completed_successfully":
    bad.append("seed does not run after migrate")
if c["migrate"].get("command") != ["/usr/local/bin/ecoctl", "migrate"] or c["seed"].get("command") != ["/usr/local/bin/ecoctl", "seed"]:
    bad.append("migrate/seed commands")
for s, port in (("command-api", 8081), ("query-api", 8082), ("workers", 8083)):
    env = c[s].get("environment", {})
    if cond(s, "migrate") != "service_completed_successfully":
        bad.append(f"{s} does not wait for migrate")
    if env.get("BIND_ADDR") != f"0.0.0.0:{port}" or c[s].get("ports") != [f"127.0.0.1:{port}:{port}"]:
        bad.append(f"{s} not bound on 0.0.0.0:{port} and published on 127.0.0.1:{port}")
    if env.get("MIGRATE_ON_START") != "false":
        bad.append(f"{s} migrates at start")
for s, svc in c.items():
    for p in svc.get("ports", []):
        if not str(p).startswith("127.0.0.1:"):
            bad.append(f"{s} publishes {p} beyond 127.0.0.1")
print(f"[compose] {'ok  ' if not bad else 'FAIL'} docker-compose.yml runs the whole system: " + ("; ".join(bad) or ", ".join(want)))
sys.exit(1 if bad else 0)
PY
if docker compose version >/dev/null 2>&1; then compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then compose=(docker-compose)
else compose=(); fi
if [ "${#compose[@]}" -gt 0 ]; then
  if "${compose[@]}" -f docker-compose.yml config -q; then echo "[compose] ok   ${compose[*]} config (compose schema)"
  else echo "[compose] FAIL ${compose[*]} config"; status=1; fi
else
  echo "[compose] skip compose schema check: neither \`docker compose\` nor docker-compose is installed"
fi

echo "[check-chart] $([ "$status" -eq 0 ] && echo passed || echo FAILED) in $(( $(date +%s) - started )) s"
exit "$status"
