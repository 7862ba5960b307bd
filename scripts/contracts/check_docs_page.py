"""Opens an API's /docs in headless Chromium, offline, and checks that every operation renders.

    python check_docs_page.py --chromium PATH NAME BASE_URL SPEC_JSON

Used by scripts/check-contracts.sh (Python standard library only). The page is loaded with
every host name but the API's own resolving to nothing, and every other address sent to a
dead proxy, so a page that needs the internet
(a CDN script, a web font, a remote spec) renders without it, as it would on a machine with
no internet. Then, from the rendered DOM (Swagger UI: one `.opblock` per operation, whose
`.opblock-summary-path` carries the path in `data-path`) and Chromium's network log:
  - at least as many `.opblock-summary` elements as operations in SPEC_JSON, and each
    (method, path) of the spec rendered;
  - no request from the page to any host other than the API's own (nor loopback).
Prints one line, `[docs] ok ...` or `[docs] FAIL ...` with the reasons; exits 1 on failure.
"""

import argparse
import html.parser
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.parse

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
TIMEOUT_S = 45


class Dom(html.parser.HTMLParser):
    """Collects Swagger UI's operation blocks: (method, path) in document order."""

    def __init__(self):
        super().__init__()
        self.summaries = 0  # elements with class `opblock-summary`
        self.blocks = []  # [method, path] per element with class `opblock`
        self.text_len = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if "opblock-summary" in classes:
            self.summaries += 1
        if "opblock" in classes:
            method = next((c[len("opblock-"):] for c in classes if c[len("opblock-"):] in METHODS), None)
            self.blocks.append([method, None])
        # `opblock-summary-path`, or `opblock-summary-path__deprecated` on a deprecated operation
        if any(c.startswith("opblock-summary-path") and "wrapper" not in c and "description" not in c for c in classes):
            if self.blocks and self.blocks[-1][1] is None and a.get("data-path") is not None:
                self.blocks[-1][1] = a["data-path"]

    def handle_data(self, data):
        self.text_len += len(data.strip())


def spec_operations(path):
    spec = json.load(open(path, encoding="utf-8"))
    return {(m, p) for p, item in (spec.get("paths") or {}).items() for m in item if m in METHODS}


def page_requests(netlog_path, page_url):
    """URLs the page (not the browser itself) requested, from Chromium's --log-net-log."""
    try:
        log = json.load(open(netlog_path, encoding="utf-8"))
    except (OSError, ValueError):
        # Chromium may stop before closing the JSON array: the events still parse line by line.
        log = None
    if log is None:
        text = open(netlog_path, encoding="utf-8", errors="replace").read().rstrip().rstrip(",")
        try:
            log = json.loads(text + "]}")
        except ValueError:
            return None
    names = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    urls = []
    for e in log.get("events", []):
        if names.get(e.get("type")) != "URL_REQUEST_START_JOB":
            continue
        p = e.get("params") or {}
        url, initiator = p.get("url"), p.get("initiator")
        # The browser's own background requests have no origin; the page's carry its origin.
        if url and (url == page_url or (initiator and initiator != "not an origin")):
            urls.append(url)
    return urls


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--chromium", required=True)
    ap.add_argument("name")
    ap.add_argument("base_url")
    ap.add_argument("spec")
    args = ap.parse_args()

    url = args.base_url.rstrip("/") + "/docs"
    host = urllib.parse.urlsplit(url).hostname or ""
    allowed = LOOPBACK | {host}
    want = spec_operations(args.spec)
    label = f"{args.name} {url}"

    tmp = tempfile.mkdtemp(prefix="ecoeco-docs-")
    netlog = os.path.join(tmp, "netlog.json")
    rules = "MAP * ~NOTFOUND, " + ", ".join(f"EXCLUDE {h}" for h in sorted(allowed))
    cmd = [
        args.chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp}/profile",
        # Names resolve to nothing; addresses (which resolve to themselves) go to a dead proxy.
        # Loopback bypasses any proxy in Chromium; the API's own host is bypassed by name.
        f"--host-resolver-rules={rules}", "--proxy-server=http://127.0.0.1:9",
        f"--proxy-bypass-list={host}", f"--log-net-log={netlog}",
        "--virtual-time-budget=15000", "--dump-dom", url,
    ]
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        print(f"[docs] FAIL {label}: chromium did not finish within {TIMEOUT_S} s")
        shutil.rmtree(tmp, ignore_errors=True)
        return 1
    requests = page_requests(netlog, url) if os.path.exists(netlog) else None
    shutil.rmtree(tmp, ignore_errors=True)

    if run.returncode != 0 or not run.stdout.strip():
        noise = ("dbus", "Fontconfig", "UPower")
        err = [l for l in run.stderr.splitlines() if l.strip() and not any(n in l for n in noise)]
        print(f"[docs] FAIL {label}: chromium exited {run.returncode} with no DOM: " + " | ".join(err[-5:]))
        return 1

    dom = Dom()
    dom.feed(run.stdout)
    rendered = {(m, p) for m, p in dom.blocks if m and p is not None}
    problems = []
    if dom.summaries < len(want):
        problems.append(
            f"{dom.summaries} operations rendered (.opblock-summary), the spec {args.spec} has {len(want)}"
            + (f"; the page's visible text is {dom.text_len} characters" if dom.summaries == 0 else "")
        )
    missing = sorted(want - rendered)
    if dom.blocks and missing:
        shown = ", ".join(f"{m.upper()} {p}" for m, p in missing[:10])
        problems.append(f"{len(missing)} of the spec's operations not rendered: {shown}" + (" ..." if len(missing) > 10 else ""))
    if requests is None:
        problems.append("no network log from chromium: cannot tell what the page requested")
    else:
        off = sorted({u for u in requests if (urllib.parse.urlsplit(u).hostname or "") not in allowed
                      and urllib.parse.urlsplit(u).scheme not in ("data", "blob")})
        if off:
            problems.append("the page requested off-machine (refused here): " + ", ".join(off))

    if problems:
        print(f"[docs] FAIL {label}: " + "; ".join(problems))
        return 1
    print(f"[docs] ok   {label}: {dom.summaries} operations rendered offline "
          f"(spec: {len(want)}), {len(requests)} requests, all to {host}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
