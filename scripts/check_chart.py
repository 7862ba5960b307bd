#!/usr/bin/env python3
"""Offline checks of the Helm chart (charts/ecoeco), run by scripts/check-chart.sh.

Helm itself comes from helm-python-sdk (the Helm v4 SDK as a library: no helm binary, no
cluster); Kubernetes schemas from kubernetes-validate. Every check prints one line; any
failure makes the exit status 1.
"""

from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import helm_python as helm
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "ecoeco"
RELEASE, NAMESPACE = "ecoeco", "ecoeco"
ROLES = ["command-api", "query-api", "relay", "projections", "policies", "mailer", "ingest"]
WORKER_GROUPS = ROLES[2:]
STANDARD_LABELS = [
    "helm.sh/chart",
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
]
SECRET_KEYS = {
    "DATABASE_URL", "REDIS_URL", "AMQP_URL", "JWT_PRIVATE_KEY", "JWT_PUBLIC_KEY",
    "KAKAO_REST_API_KEY", "GOOGLE_CLIENT_SECRET", "KAKAO_CLIENT_SECRET", "MAIL_TRANSPORT",
    "FCM_SERVICE_ACCOUNT_JSON", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY",
}
# The Deployments that read or write avatar files (command-api uploads, the avatar worker in
# `policies`, query-api serves).
STORAGE_ROLES = {"command-api", "query-api", "policies"}
CRD_GROUPS = ("monitoring.coreos.com/",)
# Settings every process reads, with the values.yaml defaults (README "Configuration").
CONFIG_DEFAULTS = {
    "HTTP_HEADER_READ_TIMEOUT_MS": "10000", "HTTP_IDLE_TIMEOUT_MS": "60000", "HTTP_MAX_HEADER_BYTES": "16384",
    "RATE_LIMIT_AUTH_PER_MIN": "30", "RATE_LIMIT_COMMANDS_PER_MIN": "300", "RATE_LIMIT_READS_PER_MIN": "3000",
    "RETENTION_INTERVAL_SECS": "3600", "RETENTION_SESSIONS_DAYS": "7", "RETENTION_EMAIL_TOKENS_DAYS": "1",
    "RETENTION_SENT_MAIL_DAYS": "7", "STREAK_BONUS_POINTS": "20", "PERIOD_CLOSE_INTERVAL_SECS": "60",
    "PERIOD_CLOSE_GRACE_SECS": "60", "QUIET_HOURS": "22:00-08:00",
}

failures: list[str] = []


def check(ok: bool, what: str, detail: str = "") -> bool:
    print(f"[chart] {'ok  ' if ok else 'FAIL'} {what}{'' if ok or not detail else ': ' + detail}")
    if not ok:
        failures.append(what)
    return ok


def load_values(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def render(values: dict | None) -> tuple[list[dict], str]:
    """`helm template`: schema validation, then every template (hooks and tests included)."""
    chart = helm.Chart.load(str(CHART))
    try:
        chart.validate_schema(values)
        manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    finally:
        chart.close()
    docs, text = [], []
    for path, body in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        text.append(f"# Source: {path}\n{body}")
        docs += [d for d in yaml.safe_load_all(body) if d]
    return docs, "\n---\n".join(text)


# --- Pod Security Standards, "restricted" (https://kubernetes.io/docs/concepts/security/pod-security-standards/)

RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                      "persistentVolumeClaim", "projected", "secret"}
SAFE_SYSCTLS = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range",
                "net.ipv4.ip_unprivileged_port_start", "net.ipv4.tcp_syncookies",
                "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
                "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
                "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes"}


def restricted_violations(pod: dict) -> list[str]:
    """Every rule of the restricted profile (baseline included) that `pod` (a PodSpec) breaks,
    plus this chart's own: a read-only root filesystem in every container."""
    bad: list[str] = []
    psc = pod.get("securityContext") or {}
    containers = (pod.get("initContainers") or []) + (pod.get("containers") or []) \
        + (pod.get("ephemeralContainers") or [])
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(host):
            bad.append(f"{host} is set")
    if (psc.get("windowsOptions") or {}).get("hostProcess"):
        bad.append("hostProcess")
    for vol in pod.get("volumes") or []:
        kinds = set(vol) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            bad.append(f"volume {vol.get('name')} of type {sorted(kinds)}")
    for sysctl in psc.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            bad.append(f"unsafe sysctl {sysctl.get('name')}")
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    if pod_seccomp not in (None, "RuntimeDefault", "Localhost"):
        bad.append(f"pod seccompProfile {pod_seccomp}")
    if psc.get("runAsUser") == 0:
        bad.append("pod runAsUser 0")
    for opts in (psc.get("seLinuxOptions"),):
        if opts and (opts.get("user") or opts.get("role") or opts.get("type") not in
                     (None, "", "container_t", "container_init_t", "container_kvm_t", "container_engine_t")):
            bad.append("pod seLinuxOptions")
    apparmor = (psc.get("appArmorProfile") or {}).get("type")
    if apparmor not in (None, "RuntimeDefault", "Localhost"):
        bad.append(f"pod appArmorProfile {apparmor}")
    if not containers:
        bad.append("no containers")
    for c in containers:
        name = c.get("name")
        sc = c.get("securityContext") or {}
        if sc.get("privileged"):
            bad.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            bad.append(f"{name}: allowPrivilegeEscalation is not false")
        run_as_non_root = sc.get("runAsNonRoot", psc.get("runAsNonRoot"))
        if run_as_non_root is not True:
            bad.append(f"{name}: runAsNonRoot is not true")
        if sc.get("runAsUser") == 0:
            bad.append(f"{name}: runAsUser 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type") or pod_seccomp
        if seccomp not in ("RuntimeDefault", "Localhost"):
            bad.append(f"{name}: seccompProfile {seccomp}")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            bad.append(f"{name}: capabilities do not drop ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            bad.append(f"{name}: adds capabilities {caps.get('add')}")
        if sc.get("procMount") not in (None, "Default"):
            bad.append(f"{name}: procMount {sc.get('procMount')}")
        if (sc.get("windowsOptions") or {}).get("hostProcess"):
            bad.append(f"{name}: hostProcess")
        opts = sc.get("seLinuxOptions")
        if opts and (opts.get("user") or opts.get("role")):
            bad.append(f"{name}: seLinuxOptions")
        if (sc.get("appArmorProfile") or {}).get("type") not in (None, "RuntimeDefault", "Localhost"):
            bad.append(f"{name}: appArmorProfile")
        for port in c.get("ports") or []:
            if port.get("hostPort"):
                bad.append(f"{name}: hostPort {port['hostPort']}")
        if sc.get("readOnlyRootFilesystem") is not True:
            bad.append(f"{name}: readOnlyRootFilesystem is not true (this chart's rule)")
    return bad


def pod_specs(docs: list[dict]) -> list[tuple[str, dict, dict]]:
    """(kind/name, pod metadata, pod spec) of every workload, hooks and test pods included."""
    out = []
    for d in docs:
        kind, name = d["kind"], d["metadata"]["name"]
        if kind == "Pod":
            out.append((f"{kind}/{name}", d["metadata"], d["spec"]))
        elif kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
            t = d["spec"]["template"]
            out.append((f"{kind}/{name}", t.get("metadata") or {}, t["spec"]))
        elif kind == "CronJob":
            t = d["spec"]["jobTemplate"]["spec"]["template"]
            out.append((f"{kind}/{name}", t.get("metadata") or {}, t["spec"]))
    return out


def env_of(container: dict) -> dict:
    return {e["name"]: e.get("value") for e in container.get("env") or []}


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def check_render(label: str, docs: list[dict], values: dict) -> None:
    """What the chart promises, on one rendering."""
    fullname = RELEASE
    merged = merge(load_values(CHART / "values.yaml"), values)
    production = merged["config"].get("APP_ENV") == "production"

    unlabelled = [f"{d['kind']}/{d['metadata']['name']}" for d in docs
                  if any(k not in (d["metadata"].get("labels") or {}) for k in STANDARD_LABELS)]
    check(not unlabelled, f"{label}: every object has the standard labels", ", ".join(unlabelled))

    pods = pod_specs(docs)
    bad = {name: v for name, _, spec in pods if (v := restricted_violations(spec))}
    check(not bad, f"{label}: {len(pods)} pod specs meet Pod Security 'restricted' + read-only root",
          "; ".join(f"{k}: {', '.join(v)}" for k, v in bad.items()))

    deployments = by_kind(docs, "Deployment")
    storage = merged["storage"]
    want_url = ("file:/var/lib/ecoeco/objects" if storage["type"] == "volume"
                else f"s3://{storage['s3']['bucket']}/{storage['s3']['prefix']}".rstrip("/"))
    claims = {d["metadata"]["name"] for d in by_kind(docs, "PersistentVolumeClaim").values()}
    storage_problems = []
    for name, d in deployments.items():
        role = name.removeprefix(f"{fullname}-")
        spec = d["spec"]["template"]["spec"]
        container = spec["containers"][0]
        if env_of(container).get("STORAGE_URL") != want_url:
            storage_problems.append(f"{role}: STORAGE_URL={env_of(container).get('STORAGE_URL')}")
        mounted = [v["persistentVolumeClaim"]["claimName"] for v in spec.get("volumes", []) if "persistentVolumeClaim" in v]
        should = storage["type"] == "volume" and role in STORAGE_ROLES
        if bool(mounted) != should or any(c not in claims and c != storage["volume"]["existingClaim"] for c in mounted):
            storage_problems.append(f"{role}: mounts {mounted or 'no claim'}")
    check(not storage_problems, f"{label}: avatar storage {storage['type']} ({want_url}) reaches "
          f"{', '.join(sorted(STORAGE_ROLES))}", "; ".join(storage_problems))

    expected = {f"{fullname}-{r}" for r in ROLES if merged["components"][r]["enabled"]}
    check(set(deployments) == expected, f"{label}: one Deployment per role ({len(expected)})",
          f"got {sorted(deployments)}")
    problems = []
    for name, dep in deployments.items():
        role = dep["metadata"]["labels"].get("app.kubernetes.io/component")
        spec = dep["spec"]["template"]["spec"]
        (c,) = spec["containers"]
        env = env_of(c)
        if env.get("MIGRATE_ON_START") != "false":
            problems.append(f"{name}: MIGRATE_ON_START is not false")
        if env.get("BIND_ADDR") != "0.0.0.0:8080" or c["ports"][0]["containerPort"] != 8080:
            problems.append(f"{name}: not on 0.0.0.0:8080")
        if role in WORKER_GROUPS and (c["command"] != ["/usr/local/bin/workers"] or env.get("WORKER_ROLES") != role):
            problems.append(f"{name}: not `workers` with WORKER_ROLES={role}")
        if role in ("command-api", "query-api") and c["command"] != [f"/usr/local/bin/{role}"]:
            problems.append(f"{name}: not the {role} binary")
        for probe, path in (("startupProbe", "/health"), ("livenessProbe", "/health"), ("readinessProbe", "/ready")):
            if (c.get(probe) or {}).get("httpGet", {}).get("path") != path:
                problems.append(f"{name}: {probe} is not GET {path}")
        res = c.get("resources") or {}
        if not res.get("requests") or not (res.get("limits") or {}).get("memory"):
            problems.append(f"{name}: resources without requests or a memory limit")
        sleep = int(merged["shutdown"]["preStopSleepSeconds"])
        if sleep and c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command") != ["/bin/sleep", str(sleep)]:
            problems.append(f"{name}: no preStop sleep")
        if spec.get("terminationGracePeriodSeconds", 30) < sleep + 30:
            problems.append(f"{name}: terminationGracePeriodSeconds leaves less than 30 s to drain")
        if not any(v.get("mountPath") == "/tmp" for v in c.get("volumeMounts") or []):
            problems.append(f"{name}: no writable /tmp")
        refs = [s.get("secretRef", {}).get("name") for s in c.get("envFrom") or []]
        if not any(refs):
            problems.append(f"{name}: reads no Secret")
        strategy = dep["spec"].get("strategy") or {}
        if strategy.get("type") != "RollingUpdate" or strategy.get("rollingUpdate", {}).get("maxUnavailable") != 0:
            problems.append(f"{name}: not a RollingUpdate with maxUnavailable 0")
    check(not problems, f"{label}: Deployments (binary, WORKER_ROLES, 0.0.0.0:8080, MIGRATE_ON_START=false, "
          "probes, resources, preStop and grace, /tmp, Secret, RollingUpdate)", "; ".join(problems))
    relay = deployments.get(f"{fullname}-relay")
    want_relays = merged["components"]["relay"]["replicas"]
    if label.startswith("production"):
        check(want_relays == 2 and relay is not None and relay["spec"].get("replicas") == 2,
              f"{label}: the relay runs 2 replicas (one publishes under the advisory lock, one hot standby)",
              f"got {None if relay is None else relay['spec'].get('replicas')}")

    configmap = by_kind(docs, "ConfigMap").get(fullname) or {}
    got = {k: (configmap.get("data") or {}).get(k) for k in CONFIG_DEFAULTS}
    want_config = {k: str(merged["config"].get(k)) for k in CONFIG_DEFAULTS}
    check(got == want_config and (production or got == CONFIG_DEFAULTS),
          f"{label}: ConfigMap/{fullname} sets the HTTP limits and rate limits"
          f"{'' if production else ' to their defaults'}", f"got {got}")

    for cm in by_kind(docs, "ConfigMap").values():
        leaked = SECRET_KEYS & set(cm.get("data") or {})
        check(not leaked, f"{label}: ConfigMap/{cm['metadata']['name']} holds no secret", str(leaked))

    jobs = by_kind(docs, "Job")
    migrate, seed = jobs.get(f"{fullname}-migrate"), jobs.get(f"{fullname}-seed")
    hook = lambda d: (d or {}).get("metadata", {}).get("annotations", {}).get("helm.sh/hook")
    cmd = lambda d: (d or {}).get("spec", {}).get("template", {}).get("spec", {}).get("containers", [{}])[0].get("command")
    check(hook(migrate) == "pre-install,pre-upgrade" and cmd(migrate) == ["/usr/local/bin/ecoctl", "migrate"],
          f"{label}: `ecoctl migrate` is a pre-install,pre-upgrade hook Job")
    check(hook(seed) == "post-install,post-upgrade" and cmd(seed) == ["/usr/local/bin/ecoctl", "seed"],
          f"{label}: `ecoctl seed` is a post-install,post-upgrade hook Job")
    # The migrate hook runs before the release's Secret and ConfigMap exist.
    secret_ref = [s["secretRef"]["name"] for s in migrate["spec"]["template"]["spec"]["containers"][0]["envFrom"]]
    secrets = by_kind(docs, "Secret")
    hook_secret_ok = merged["existingSecret"] in secret_ref or any(
        hook(secrets.get(n)) == "pre-install,pre-upgrade"
        and int(secrets[n]["metadata"]["annotations"]["helm.sh/hook-weight"]) < 0 for n in secret_ref)
    check(hook_secret_ok, f"{label}: the migrate hook reads an existingSecret or a hook Secret created before it")
    if production and not merged["existingSecret"]:
        check(f"{fullname}" in secrets, f"{label}: production secrets rendered into a Secret")

    tests = [d for d in docs if d["kind"] == "Pod" and hook(d) == "test"]
    urls = " ".join(" ".join(c.get("command", [])) for t in tests for c in t["spec"]["containers"])
    check(all(f"{fullname}-{api}" in urls for api in ("command-api", "query-api")) and "/ready" in urls,
          f"{label}: a helm test pod GETs both APIs' /ready")

    services = by_kind(docs, "Service")
    check(all(f"{fullname}-{api}" in services for api in ("command-api", "query-api")),
          f"{label}: Services for both APIs")
    check(len(by_kind(docs, "PodDisruptionBudget")) == len(expected), f"{label}: a PodDisruptionBudget per role")

    for api in ("command-api", "query-api"):
        if merged["components"][api]["autoscaling"]["enabled"]:
            hpa = by_kind(docs, "HorizontalPodAutoscaler").get(f"{fullname}-{api}")
            check(hpa is not None and "replicas" not in deployments[f"{fullname}-{api}"]["spec"],
                  f"{label}: HPA owns {api}'s replicas")
    if merged["metrics"]["prometheusRule"]["enabled"]:
        (rule,) = by_kind(docs, "PrometheusRule").values()
        alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
        want = {"EcoEcoOutboxBacklog", "EcoEcoParkedMessages", "EcoEcoProjectionLag", "EcoEcoQueueBacklog",
                "EcoEcoHTTPErrorRate",
                "EcoEcoDependencyDown"}
        check(want <= alerts, f"{label}: PrometheusRule alerts {sorted(want)}", f"got {sorted(alerts)}")
        dep = [r for g in rule["spec"]["groups"] for r in g["rules"] if r.get("alert") == "EcoEcoDependencyDown"]
        check(len(dep) == 1 and dep[0]["expr"].startswith("min by (dependency) (dependency_up{")
              and dep[0]["expr"].endswith(") == 0") and dep[0]["for"] == "5m",
              f"{label}: EcoEcoDependencyDown fires on min by (dependency) (dependency_up) == 0 for 5m",
              str(dep))
    if merged["grafanaDashboard"]["enabled"]:
        dash = by_kind(docs, "ConfigMap").get(f"{fullname}-dashboard")
        check(dash is not None and dash["metadata"]["labels"].get("grafana_dashboard") == "1"
              and "ecoeco-pipeline.json" in dash["data"], f"{label}: Grafana dashboard ConfigMap for the sidecar")


def kubernetes_validate(files: list[Path], versions: list[str]) -> None:
    exe = Path(sys.executable).parent / "kubernetes-validate"
    for version in versions:
        started = time.monotonic()
        proc = subprocess.run([str(exe), "--strict", "--quiet", "-k", version, *map(str, files)],
                              capture_output=True, text=True)
        lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
        # Prometheus Operator kinds (CRDs) have no schema in kubernetes-validate.
        crd = [line for line in lines if line.startswith("WARN") and any(g in line for g in CRD_GROUPS)]
        other = [line for line in lines if line not in crd]
        ok = proc.returncode == 0 and not other
        check(ok, f"kubernetes-validate --strict against Kubernetes {version} ({len(files)} renderings, "
              f"{len(crd)} CRD objects skipped, {time.monotonic() - started:.1f} s)", "\n".join(other[:20]))


def must_fail(label: str, values: dict, expect: str) -> None:
    try:
        render(values)
    except helm.HelmError as e:
        msg = str(e)
        check(expect.lower() in msg.lower(), f"refused: {label}", f"failed for another reason: {msg[:300]}")
        print(f"         ({msg.strip().splitlines()[-1][:400]})")
        return
    check(False, f"refused: {label}", "it rendered")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kube-versions", default="1.29.0,1.37.0",
                    help="Kubernetes versions to validate against (the chart's kubeVersion floor and the newest)")
    ap.add_argument("--keep", help="write the renderings to this directory")
    args = ap.parse_args()
    print(f"[chart] Helm SDK {helm.helm_sdk_version()} (helm-python-sdk {helm.__version__}), chart {CHART.relative_to(ROOT)}")

    prod = load_values(CHART / "values-production.yaml")
    # Production with secrets in values (the chart renders the Secret and the hook copy).
    prod_inline = merge(prod, {"existingSecret": "", "secrets": {
        "DATABASE_URL": "postgres://ecoeco:s3cret@db:5432/ecoeco", "REDIS_URL": "redis://redis:6379",
        "AMQP_URL": "amqp://ecoeco:s3cret@mq:5672/%2f", "JWT_PRIVATE_KEY": "-----BEGIN PRIVATE KEY-----",
        "JWT_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----"}, "networkPolicy": {"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]}})
    s3 = {"storage": {"type": "s3", "s3": {"bucket": "ecoeco-media", "endpoint": "https://minio.storage.svc:9000"}}}
    variants = {"default": {}, "production": prod, "production+inline-secrets": prod_inline, "s3-storage": s3}

    for label, values in (("default", None), ("production", prod)):
        report = helm.lint(str(CHART), values, strict=True)
        msgs = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2] 
        errors = report.get("errors") or []
        check(not msgs and not errors, f"helm lint --strict ({label} values)",
              "; ".join([f"{m['path']}: {m['error']}" for m in msgs] + errors))

    # The restricted check checks itself on a pod that breaks it.
    breaking = {"hostNetwork": True, "volumes": [{"name": "host", "hostPath": {"path": "/"}}],
                "containers": [{"name": "x", "securityContext": {"privileged": True, "runAsUser": 0,
                                                                 "capabilities": {"add": ["SYS_ADMIN"]}}}]}
    found = restricted_violations(breaking)
    check(len(found) >= 8, f"the restricted check refuses a privileged root pod ({len(found)} violations)", str(found))

    out = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="ecoeco-chart-"))
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for label, values in variants.items():
        try:
            docs, text = render(values or None)
        except helm.HelmError as e:
            check(False, f"helm template ({label} values)", str(e))
            continue
        kinds: dict[str, int] = {}
        for d in docs:
            kinds[d["kind"]] = kinds.get(d["kind"], 0) + 1
        check(True, f"helm template ({label} values): {len(docs)} objects "
              f"({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))})")
        path = out / f"{label}.yaml"
        path.write_text(text)
        files.append(path)
        check_render(label, docs, values)

    kubernetes_validate(files, args.kube_versions.split(","))

    must_fail("components.command-api.replicas: two (schema)",
              {"components": {"command-api": {"replicas": "two"}}}, "replicas")
    must_fail("a typo in a value name (schema)", {"components": {"query-api": {"replica": 3}}}, "replica")
    must_fail("production without a secret", {"config": {"APP_ENV": "production"}}, "no secret is given")
    must_fail("production with only some secrets",
              {"config": {"APP_ENV": "production"}, "secrets": {"DATABASE_URL": "postgres://x"}}, "Missing: REDIS_URL")
    must_fail("a secret in config (ConfigMap)", {"config": {"DATABASE_URL": "postgres://x"}}, "is a secret")
    must_fail("ingress without rules", {"ingress": {"enabled": True}}, "ingress")
    must_fail("S3 storage without a bucket", {"storage": {"type": "s3"}}, "storage.s3.bucket")

    dashboard = ROOT / "ops" / "grafana" / "ecoeco-pipeline.json"
    check(dashboard.read_bytes() == (CHART / "dashboards" / "ecoeco-pipeline.json").read_bytes(),
          "charts/ecoeco/dashboards/ecoeco-pipeline.json equals ops/grafana/ecoeco-pipeline.json",
          "copy ops/grafana/ecoeco-pipeline.json into the chart")

    if args.keep:
        print(f"[chart] renderings kept in {out}")
    print(f"[chart] {'FAILED: ' + str(len(failures)) + ' check(s)' if failures else 'all checks passed'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
