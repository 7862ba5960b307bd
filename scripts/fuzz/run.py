"""Fuzzes both running EcoEco APIs with schemathesis (driven by scripts/fuzz.sh).

    python scripts/fuzz/run.py COMMAND_API_URL QUERY_API_URL

Creates three fresh accounts through the command API (no fixtures, nothing shared with other
tests), promotes one to admin, then runs schemathesis four times:

    command-user   command API, the user's token, every operation except the two that end the
                   session (admin operations included: they must answer 403 to a user)
    command-admin  command API, the admin's token, only the operations under /api/v1/admin/
    query-user     query API, the user's token, every operation
    command-end    command API, a third user's token, POST /auth/logout and DELETE /users/me
                   (last and alone: they revoke the token and delete the account)

Settings come from the environment; scripts/fuzz.sh documents and sets them: FUZZ_CHECKS,
FUZZ_PHASES, FUZZ_ADMIN_PHASES, FUZZ_MAX_EXAMPLES, FUZZ_END_MAX_EXAMPLES, FUZZ_SEED,
FUZZ_WORKERS, FUZZ_REQUEST_TIMEOUT, FUZZ_REPORTS, FUZZ_OUT, FUZZ_HOOKS, FUZZ_CONFIG,
FUZZ_PRINT_LINES, FUZZ_EXTRA_ARGS, ECOECO_DATABASE_URL, ECOCTL.

Prints a summary per run and per API (cases sent, failures by check, exit status) and exits 1
when any run failed, 2 when it could not set up. Each run leaves FUZZ_OUT/<run>.log (the full
schemathesis output, with a curl reproduction of every failure), <run>.json and <run>.junit.xml.
"""

import base64
import json
import os
import secrets
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request

PREFIX = "[fuzz]"

# How the final summary groups checks (names as in --checks).
FIVE_XX = {"not_a_server_error"}
PROBLEM = {"problem_json"}
ACCEPTANCE = {"positive_data_acceptance", "positive_data_accepted"}
SPEC = {
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
}


def say(*parts):
    print(PREFIX, *parts, flush=True)


def die(message):
    say(f"error: {message}")
    sys.exit(2)


def env(name, default):
    value = os.environ.get(name, "").strip()
    return value if value else default


def request(method, url, body=None, timeout=15):
    """One JSON request; returns (status, parsed body or text)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def wait_for_schema(base, deadline_s=60):
    until = time.monotonic() + deadline_s
    while True:
        try:
            status, body = request("GET", f"{base}/openapi.json", timeout=5)
            if status == 200 and isinstance(body, dict) and "paths" in body:
                return body
        except OSError:
            pass
        if time.monotonic() > until:
            die(f"{base}/openapi.json did not answer 200 within {deadline_s} s")
        time.sleep(1)


def jwt_claims(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


class Account:
    def __init__(self, kind):
        tag = secrets.token_hex(5)
        self.username = f"fuzz_{kind}_{tag}"
        self.email = f"fuzz-{kind}-{tag}@example.com"
        # Letters and digits, as the password rule asks; long and random, so no fuzzed
        # PATCH /users/me/password can guess the current one.
        self.password = f"Fz{secrets.token_hex(12)}9"
        self.token = None

    def register(self, command_url):
        status, body = request(
            "POST",
            f"{command_url}/api/v1/auth/register",
            {"username": self.username, "email": self.email, "password": self.password},
        )
        if status != 201 or not isinstance(body, dict) or "access_token" not in body:
            die(f"registering {self.email} answered {status}: {body}")
        self.token = body["access_token"]
        return self

    def login(self, command_url):
        # Sign-in is rate limited per client address; earlier tests may have used the budget.
        until = time.monotonic() + 120
        while True:
            status, body = request(
                "POST", f"{command_url}/api/v1/auth/login", {"email": self.email, "password": self.password}
            )
            if status != 429 or time.monotonic() > until:
                break
            say(f"signing in as {self.email}: 429, retrying in 5 s")
            time.sleep(5)
        if status != 200 or not isinstance(body, dict) or "access_token" not in body:
            die(f"signing in as {self.email} answered {status}: {body}")
        self.token = body["access_token"]
        return self


def grant_admin(account):
    """Makes `account` an admin: psql on ECOECO_DATABASE_URL, else `$ECOCTL grant-role`."""
    database_url = env("ECOECO_DATABASE_URL", "")
    ecoctl = env("ECOCTL", "")
    if database_url:
        # The e-mail is generated above from [a-z0-9-_@.] only, so quoting it inline is safe.
        assert all(c.isalnum() or c in "-_@." for c in account.email)
        sql = (
            "update auth.users set role = 'admin' "
            f"where lower(email) = lower('{account.email}') and deleted_at is null returning id"
        )
        done = subprocess.run(
            ["psql", database_url, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0 or not done.stdout.strip():
            die(f"psql could not make {account.email} admin: {done.stderr.strip() or 'no row updated'}")
    elif ecoctl:
        done = subprocess.run([ecoctl, "grant-role", account.email, "admin"], capture_output=True, text=True)
        if done.returncode != 0:
            die(f"{ecoctl} grant-role failed: {(done.stderr or done.stdout).strip()}")
    else:
        die("set ECOECO_DATABASE_URL (the system's database) or ECOCTL (path of ecoctl) to create the admin")


def check_names():
    """Failure code (ST101, ...) -> the check that reports it, from the installed schemathesis."""
    try:
        from schemathesis.failure_codes import FAILURE_CLASSES
    except ImportError:
        return {}
    return {cls.code: "/".join(cls.checks) for cls in FAILURE_CLASSES if getattr(cls, "checks", ())}


def check_of(failure, names):
    title = failure.get("title") or ""
    if failure.get("code") == "ST901" and "`" in title:
        return title.split("`")[1]  # "Custom check failed: `problem_json`"
    return names.get(failure.get("code"), title)


def summarise(run, names):
    """Prints cases sent and failures by check for one run."""
    report = run["report"]
    if report is None:
        say(f"{run['name']}: no JSON report; exit status {run['exit']} (see {run['log']})")
        return
    cases = report.get("test_cases", {})
    ops = report.get("operations", {})
    errors = report.get("errors", [])
    say(
        f"{run['name']}: {cases.get('generated', 0)} cases over {ops.get('tested', 0)}/{ops.get('selected', 0)} "
        f"operations in {run['elapsed']:.0f} s, {cases.get('with_failures', 0)} failing cases, "
        f"{len(errors)} errors, exit status {run['exit']}"
    )
    for failure in report.get("failures", []):
        operations = failure.get("operations", [])
        say(
            f"  {check_of(failure, names)} ({failure.get('code')} {failure.get('title')}): "
            f"{failure.get('count')} unique on {len(operations)} operation(s)"
        )
        for operation in operations:
            say(f"      {operation}")
    for error in errors:
        say(f"  error: {json.dumps(error)[:300]}")


def print_failures(log_path, limit):
    """Copies the FAILURES/ERRORS section of schemathesis' output (with curl reproductions)."""
    try:
        with open(log_path, errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return
    starts = [i for i, line in enumerate(lines) if line.startswith("=") and ("FAILURES" in line or "ERRORS" in line)]
    if not starts or limit <= 0:
        return
    start = starts[0]
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].startswith("=") and ("WARNINGS" in lines[i] or "SUMMARY" in lines[i])),
        len(lines),
    )
    section = lines[start:end]
    for line in section[:limit]:
        print(f"    {line}")
    if len(section) > limit:
        say(f"  ... {len(section) - limit} more lines in {log_path}")


def run_schemathesis(name, api, schema_url, token, out_dir, max_examples, phases, include=(), exclude=()):
    cmd = [
        sys.executable, "-m", "schemathesis.cli",
        "--config-file", env("FUZZ_CONFIG", "scripts/fuzz/schemathesis.toml"),
        "run", schema_url,
        "--header", f"Authorization: Bearer {token}",
        "--checks", env("FUZZ_CHECKS", "not_a_server_error,problem_json"),
        "--phases", phases,
        "--max-examples", str(max_examples),
        "--seed", env("FUZZ_SEED", "20261122"),
        "--workers", env("FUZZ_WORKERS", "1"),
        "--request-timeout", env("FUZZ_REQUEST_TIMEOUT", "10"),
        # Every failing case of an operation, not only the first one.
        "--continue-on-failure",
        # No example database between runs: the same seed gives the same cases.
        "--generation-database", "none",
        "--suppress-health-check", "all",
        "--no-color",
        "--report-dir", out_dir,
    ]
    # The JSON report feeds the summary, so it is always written.
    reports = ["json"] + [r for r in env("FUZZ_REPORTS", "junit").split(",") if r and r != "json"]
    cmd += ["--report", ",".join(reports)]
    file_names = {"json": "json", "junit": "junit.xml", "vcr": "vcr.yaml", "har": "har", "ndjson": "ndjson"}
    for report in reports:
        if report in file_names:
            cmd += [f"--report-{report}-path", os.path.join(out_dir, f"{name}.{file_names[report]}")]
    for label in include:
        cmd += ["--include-name", label]
    for label in exclude:
        cmd += ["--exclude-name", label]
    cmd += shlex.split(env("FUZZ_EXTRA_ARGS", ""))

    log_path = os.path.join(out_dir, f"{name}.log")
    json_path = os.path.join(out_dir, f"{name}.json")
    if os.path.exists(json_path):
        os.remove(json_path)
    shown = " ".join(shlex.quote("Authorization: Bearer ***" if a.startswith("Authorization:") else a) for a in cmd)
    say(f"{name}: {shown}")
    started = time.monotonic()
    with open(log_path, "w") as log:
        exit_code = subprocess.run(
            cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "SCHEMATHESIS_HOOKS": env("FUZZ_HOOKS", "")}
        ).returncode
    elapsed = time.monotonic() - started
    try:
        with open(json_path) as f:
            report = json.load(f)
    except (OSError, ValueError):
        report = None
    return {"name": name, "api": api, "exit": exit_code, "elapsed": elapsed, "report": report, "log": log_path}


def labels(schema, predicate):
    result = []
    for path, item in schema.get("paths", {}).items():
        for method in item:
            if method in ("get", "put", "post", "delete", "patch", "head", "options", "trace") and predicate(method.upper(), path):
                result.append(f"{method.upper()} {path}")
    return result


def main():
    if len(sys.argv) != 3:
        die("usage: run.py COMMAND_API_URL QUERY_API_URL")
    command_url, query_url = (url.rstrip("/") for url in sys.argv[1:3])
    out_dir = env("FUZZ_OUT", "target/fuzz")
    os.makedirs(out_dir, exist_ok=True)
    max_examples = int(env("FUZZ_MAX_EXAMPLES", "50"))
    end_examples = int(env("FUZZ_END_MAX_EXAMPLES", "10"))
    print_lines = int(env("FUZZ_PRINT_LINES", "300"))
    started = time.monotonic()

    command_schema = wait_for_schema(command_url)
    wait_for_schema(query_url)

    user = Account("u").register(command_url)
    admin = Account("a").register(command_url)
    grant_admin(admin)
    admin.login(command_url)
    if jwt_claims(admin.token).get("role") != "admin":
        die(f"the admin's new token carries role {jwt_claims(admin.token).get('role')!r}, not 'admin'")
    ender = Account("e").register(command_url)
    say(f"accounts: user {user.email}, admin {admin.email}, session-ending {ender.email}")

    ending = labels(command_schema, lambda m, p: (m, p) in {("POST", "/api/v1/auth/logout"), ("DELETE", "/api/v1/users/me")})
    admin_ops = labels(command_schema, lambda m, p: p.startswith("/api/v1/admin/"))
    if not admin_ops:
        die("the command API's spec lists no operation under /api/v1/admin/")

    phases = env("FUZZ_PHASES", "examples,coverage,fuzzing")
    admin_phases = env("FUZZ_ADMIN_PHASES", "examples,coverage,fuzzing,stateful")
    command_spec, query_spec = f"{command_url}/openapi.json", f"{query_url}/openapi.json"
    plan = [
        ("command-user", "command API", command_spec, user.token, max_examples, phases, (), ending),
        ("command-admin", "command API", command_spec, admin.token, max_examples, admin_phases, admin_ops, ()),
        ("query-user", "query API", query_spec, user.token, max_examples, phases, (), ()),
        ("command-end", "command API", command_spec, ender.token, end_examples, phases, ending, ()),
    ]
    names = check_names()
    runs = []
    for name, api, spec, token, examples, run_phases, include, exclude in plan:
        run = run_schemathesis(name, api, spec, token, out_dir, examples, run_phases, include, exclude)
        summarise(run, names)
        if run["exit"] != 0:
            print_failures(run["log"], print_lines)
            say(f"{name}: full output in {run['log']}")
        runs.append(run)

    say(f"summary ({time.monotonic() - started:.0f} s; logs and reports in {out_dir}/):")
    for api in ("command API", "query API"):
        mine = [run for run in runs if run["api"] == api]
        cases = sum((run["report"] or {}).get("test_cases", {}).get("generated", 0) for run in mine)
        counts = {"5xx": 0, "not problem+json": 0, "spec mismatches": 0, "valid input refused": 0, "other": 0}
        for run in mine:
            for failure in (run["report"] or {}).get("failures", []):
                check = check_of(failure, names)
                group = (
                    "5xx" if check in FIVE_XX
                    else "not problem+json" if check in PROBLEM
                    else "spec mismatches" if any(part in SPEC for part in check.split("/"))
                    else "valid input refused" if any(part in ACCEPTANCE for part in check.split("/"))
                    else "other"
                )
                counts[group] += failure.get("count", 0)
        status = ", ".join(f"{run['name']} exit {run['exit']}" for run in mine)
        found = ", ".join(f"{key} {value}" for key, value in counts.items())
        say(f"  {api}: {cases} cases; unique failures: {found}; {status}")
    failed = [run["name"] for run in runs if run["exit"] != 0]
    if failed:
        say(f"FAILED: {', '.join(failed)}")
        sys.exit(1)
    say("passed")


if __name__ == "__main__":
    main()
