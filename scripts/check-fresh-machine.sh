#!/usr/bin/env bash
# Exercises the install path of the two commands on a fresh Debian 12, as the README promises:
# bootstraps a throwaway Debian 12 root (debootstrap --variant=minbase), copies this checkout
# into /root/ecoeco, and inside it, in its own network namespace (its ports do not collide with
# services already running here), runs scripts/services.sh (gcc, python3-venv, PostgreSQL,
# Redis, RabbitMQ installed from Debian and started), then scripts/python-env.sh, and checks:
# the three services answer (PostgreSQL with the development password), a Rust program links
# (rustc through `cc`; with this machine's toolchain mounted read-only, as "only rustup"),
# pika >= 1.3 in target/pyenv, and a second services.sh is a no-op. With --full it then runs
# scripts/test.sh in there (a full build and test run: long).
#
# The namespace has no route out: apt and pip reach the registries through a small HTTP proxy
# on this side, joined to the namespace by a Unix socket.
#
#   sudo scripts/check-fresh-machine.sh [--full] [--keep] [--timeout SECONDS]
#
# Needs root (debootstrap, chroot, namespaces), Debian's debootstrap (installed if missing),
# python3 and unshare. Prints PASS or FAIL; exits 0 only on PASS. Takes about 5 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
checkout=$PWD
full=0 keep=0 limit=1200
while [ $# -gt 0 ]; do
  case "$1" in
    --full) full=1; limit=5400 ;;
    --keep) keep=1 ;;
    --timeout) limit=$2; shift ;;
    *) echo "usage: $0 [--full] [--keep] [--timeout SECONDS]" >&2; exit 2 ;;
  esac
  shift
done
say() { printf '[fresh] %s\n' "$*"; }
[ "$(id -u)" -eq 0 ] || { say "needs root (debootstrap, chroot, namespaces)"; exit 2; }
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
started=$(date +%s)

if ! command -v debootstrap >/dev/null 2>&1; then
  say "installing debootstrap (Debian package)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

work=$(mktemp -d /var/tmp/ecoeco-fresh.XXXXXX)
root=$work/root
log=$work/log
cleanup() {
  local rc=$?
  [ -n "${proxy_pid:-}" ] && kill "$proxy_pid" 2>/dev/null || true
  if [ "$keep" -eq 1 ]; then
    say "kept $work"
  elif findmnt -rn -o TARGET | grep -q "^$work"; then
    say "something is still mounted under $work: not removing it"
  else
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT

say "debootstrap bookworm (minbase) into $root"
t=$(date +%s)
if ! debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1; then
  tail -n 20 "$work/debootstrap.log"; say "FAIL: debootstrap"; exit 1
fi
say "debootstrap done in $(( $(date +%s) - t )) s"

# The checkout (not its build output nor git data), where a root user keeps it: /root, which
# the postgres user cannot enter.
mkdir -p "$root/root/ecoeco"
tar -C "$checkout" --exclude=./target --exclude=./.git -cf - . | tar -C "$root/root/ecoeco" -xf -
printf '127.0.0.1 localhost ecoeco-fresh\n::1 localhost\n' >"$root/etc/hosts"
echo ecoeco-fresh >"$root/etc/hostname"
# A machine whose TLS goes through an intercepting proxy trusts its CA (added under
# /usr/local/share/ca-certificates); the fresh root gets the same trust, as that machine would.
ca=0
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1 && [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  ca=1
  mkdir -p "$root/etc/ssl/certs"
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/host-ca-bundle.crt"
fi
# Only rustup: this machine's toolchain, mounted read-only below, when there is one.
rustup_home=${RUSTUP_HOME:-$HOME/.rustup} cargo_home=${CARGO_HOME:-$HOME/.cargo}
have_rust=0
if [ -x "$cargo_home/bin/rustc" ] && [ -d "$rustup_home/toolchains" ]; then
  have_rust=1
  mkdir -p "$root/opt/rustup" "$root/opt/cargo-bin" "$root/root/.cargo"
fi

# The egress proxy: CONNECT (https: pip, crates.io) and absolute-URI GET (http: apt) to ports
# 80 and 443, listening on a Unix socket; in the namespace a bridge serves it on 127.0.0.1:3128.
cat >"$work/proxy.py" <<'PY'
import asyncio, sys
from urllib.parse import urlsplit

async def pipe(r, w):
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        w.close()

async def proxy(reader, writer):
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        if method == "CONNECT":
            host, port = target.rsplit(":", 1)
            rest = b""
        else:
            u = urlsplit(target)
            host, port = u.hostname, str(u.port or 80)
            rest = head
        if port not in ("80", "443"):
            writer.write(b"HTTP/1.1 403 Forbidden\r\n\r\n"); writer.close(); return
        up_r, up_w = await asyncio.open_connection(host, int(port))
        if method == "CONNECT":
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            up_w.write(rest)
        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))
    except Exception as e:
        try:
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\n\r\n" + str(e).encode()); writer.close()
        except Exception:
            pass

async def bridge(reader, writer, sock):
    up_r, up_w = await asyncio.open_unix_connection(sock)
    await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))

async def main():
    mode, sock = sys.argv[1], sys.argv[2]
    if mode == "proxy":
        server = await asyncio.start_unix_server(proxy, sock)
    else:
        server = await asyncio.start_server(lambda r, w: bridge(r, w, sock), "127.0.0.1", 3128)
    async with server:
        await server.serve_forever()

asyncio.run(main())
PY
python3 "$work/proxy.py" proxy "$work/egress.sock" &
proxy_pid=$!
for _ in $(seq 50); do [ -S "$work/egress.sock" ] && break; sleep 0.1; done

# What runs inside the fresh root, as root, from the checkout.
cat >"$root/root/fresh-check.sh" <<EOF
#!/bin/bash
set -euo pipefail
cd /root/ecoeco
step() { printf '[fresh] --- %s\n' "\$*"; }
fail() { printf '[fresh] FAILED: %s\n' "\$*"; exit 1; }
export http_proxy=http://127.0.0.1:3128 https_proxy=http://127.0.0.1:3128
echo 'Acquire::http::Proxy "http://127.0.0.1:3128";' >/etc/apt/apt.conf.d/90proxy
if [ $ca -eq 1 ]; then
  export PIP_CERT=/etc/ssl/certs/host-ca-bundle.crt SSL_CERT_FILE=/etc/ssl/certs/host-ca-bundle.crt CARGO_HTTP_CAINFO=/etc/ssl/certs/host-ca-bundle.crt
fi
if [ $have_rust -eq 1 ]; then
  export RUSTUP_HOME=/opt/rustup CARGO_HOME=/root/.cargo PATH=/opt/cargo-bin:\$PATH
fi
step "fresh root: \$(. /etc/os-release; echo \$PRETTY_NAME); cc: \$(command -v cc || echo none); python3: \$(command -v python3 || echo none)"
t=\$(date +%s)
step "scripts/services.sh"
scripts/services.sh || fail "scripts/services.sh"
step "services.sh took \$(( \$(date +%s) - t )) s"
for p in 5432 6379 5672; do (exec 3<>/dev/tcp/127.0.0.1/\$p) 2>/dev/null || fail "port \$p is closed"; done
PGPASSWORD=postgres psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select version()' || fail "PostgreSQL refuses postgres/postgres"
command -v cc >/dev/null || fail "no cc after services.sh"
if [ $have_rust -eq 1 ]; then
  printf 'fn main() { println!("linked with cc"); }\n' >/tmp/hello.rs
  rustc --version
  (cd /tmp && rustc -o hello hello.rs && ./hello) || fail "rustc cannot link"
else
  step "no Rust toolchain on the host: link test skipped"
fi
step "scripts/python-env.sh"
py=\$(scripts/python-env.sh) || fail "scripts/python-env.sh"
"\$py" -c 'import pika, sys; print("pika", pika.__version__, "in", sys.prefix); assert tuple(map(int, pika.__version__.split(".")[:2])) >= (1, 3)' || fail "pika >= 1.3"
step "scripts/services.sh again (must be a no-op)"
t=\$(date +%s)
out=\$(scripts/services.sh) || fail "second services.sh"
echo "\$out"
case "\$out" in *installing*|*starting*) fail "second services.sh did work again";; esac
if [ $full -eq 1 ]; then
  step "scripts/test.sh (full build and test run)"
  scripts/test.sh || fail "scripts/test.sh"
fi
step "all good"
EOF
chmod +x "$root/root/fresh-check.sh"

say "running scripts/services.sh and scripts/python-env.sh in the fresh root (network namespace, limit ${limit} s; log $log)"
t=$(date +%s)
set +e
timeout --kill-after=30 "$limit" unshare --net --mount --uts --pid --fork --kill-child \
  env ROOT="$root" WORK="$work" HAVE_RUST="$have_rust" RUSTUP_SRC="$rustup_home" CARGO_SRC="$cargo_home" bash -c '
  set -euo pipefail
  hostname ecoeco-fresh
  ip link set lo up 2>/dev/null || python3 -c "import socket,fcntl,struct; s=socket.socket(); fcntl.ioctl(s, 0x8914, struct.pack(\"16sh\", b\"lo\", 0x1|0x40))"
  mount --make-rprivate /
  mount -t proc proc "$ROOT/proc"
  mount --rbind /dev "$ROOT/dev"
  mount -t tmpfs -o mode=1777 tmpfs "$ROOT/dev/shm"
  mount --rbind -o ro /sys "$ROOT/sys" 2>/dev/null || mount --rbind /sys "$ROOT/sys"
  mount -t tmpfs tmpfs "$ROOT/run"
  if [ "$HAVE_RUST" = 1 ]; then
    mount --bind "$RUSTUP_SRC" "$ROOT/opt/rustup" && mount -o remount,bind,ro "$ROOT/opt/rustup"
    mount --bind "$CARGO_SRC/bin" "$ROOT/opt/cargo-bin" && mount -o remount,bind,ro "$ROOT/opt/cargo-bin"
  fi
  python3 "$WORK/proxy.py" bridge "$WORK/egress.sock" &
  sleep 0.5
  chroot "$ROOT" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin /root/fresh-check.sh
' 2>&1 | tee "$log" | grep --line-buffered -E '^\[(fresh|services|deps|python)\]|^PostgreSQL|^rustc|^linked|^pika|^\[test\]|passed'
rc=${PIPESTATUS[0]}
set -e
elapsed=$(( $(date +%s) - t ))
if [ "$rc" -eq 0 ] && grep -q '^\[fresh\] --- all good' "$log"; then
  say "PASS: the install path works on a fresh Debian 12 (checks ${elapsed} s, total $(( $(date +%s) - started )) s)"
  exit 0
fi
[ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && say "timed out after ${limit} s"
tail -n 30 "$log"
keep=1
say "FAIL (exit $rc after ${elapsed} s); log and root kept in $work"
exit 1
