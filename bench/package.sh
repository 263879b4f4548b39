#!/usr/bin/env bash
# Cold start of a Python function that imports a library from package/ (Scaleway's packaging:
# `pip install --target package`) against the same function with the library in the
# interpreter's site-packages, both on the pooled path (sandbox v2, pre-warmed zygote):
# p50/p99 of CALLS cold HTTP calls each, and the ratio (the bar: same p50 within 10%).
#
#   sudo bench/package.sh [CALLS]        (default 30)
#
# The library is LIB (default pyparsing, pure Python) as Debian installed it in
# /usr/lib/python3/dist-packages: the "site" function imports it from there, the "package"
# function from a copy in its package/ (cp -a: the byte-code stays valid, as pip's would be).
# A call is made cold as in bench/coldstart.sh: the instances are stopped through the admin
# API, the bench waits for a ready pre-warmed sandbox, then times the call.
set -euo pipefail
cd "$(dirname "$0")/.."
CALLS=${1:-30}
LIB=${LIB:-pyparsing}
FNBOX=${FNBOX:-target/release/fnbox}
SITE=/usr/lib/python3/dist-packages
[ "$(id -u)" = 0 ] || { echo "bench/package.sh: run as root (sandboxes need namespaces and cgroups)" >&2; exit 1; }
[ -d "$SITE/$LIB" ] || { echo "bench/package.sh: $SITE/$LIB is missing: apt-get install python3-$LIB, or set LIB" >&2; exit 1; }
[ -x "$FNBOX" ] || cargo build --release -q

DATA=$(mktemp -d)
SERVE_PID=
cleanup() {
  [ -z "$SERVE_PID" ] || { kill "$SERVE_PID" 2>/dev/null || true; wait "$SERVE_PID" 2>/dev/null || true; }
  rm -rf "$DATA"
}
trap cleanup EXIT
for f in site package; do
  mkdir -p "$DATA/$f"
  printf 'import %s\n\ndef handle(event, context):\n    return %s.__file__\n' "$LIB" "$LIB" > "$DATA/$f/handler.py"
done
mkdir -p "$DATA/package/package"
cp -a "$SITE/$LIB" "$DATA/package/package/"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$FNBOX" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA/serve" --cgroup-parent fnbox/bench-package 2>"$DATA/serve.log" &
SERVE_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
export FNBOX_SERVER="http://127.0.0.1:$PORT" FNBOX_DATA_DIR="$DATA/serve"
for f in site package; do
  "$FNBOX" deploy "$f" "$DATA/$f" --runtime python3 >/dev/null
done

PYTHONPATH=bench python3 - "$PORT" "$(cat "$DATA/serve/admin.token")" "$CALLS" <<'PY'
import http.client, sys, time
import prom

port, token, calls = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])


def request(method, path, admin=False):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    c.request(method, path, headers={"Authorization": f"Bearer {token}"} if admin else {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


def metric(prefix):
    return sum(v for k, v in prom.scrape(port, token).items() if k.startswith(prefix))


def settle():
    """A ready pre-warmed Python sandbox, none starting: every call meets an idle machine."""
    end = time.monotonic() + 20
    while time.monotonic() < end:
        if metric('fnbox_warm_sandboxes{runtime="python3",memory_mb="256",state="ready"}') >= 1 and \
                metric('fnbox_warm_sandboxes{runtime="python3",memory_mb="256",state="starting"}') == 0:
            break
        time.sleep(0.05)
    time.sleep(0.2)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(p / 100 * len(xs) + 0.5)) - 1))]


times = {"site": [], "package": []}
where = {}
for _ in range(calls):
    for name in times:
        status, body = request("DELETE", f"/api/v1/functions/{name}/instances", admin=True)
        assert status == 200, body
        settle()
        t = time.perf_counter()
        status, body = request("GET", f"/fn/{name}/")
        times[name].append(time.perf_counter() - t)
        assert status == 200, (name, status, body)
        where[name] = body.decode()

print(f"{'function':8} {'p50 ms':>8} {'p99 ms':>8} {'mean':>8}  imported from")
for name, xs in times.items():
    print(f"{name:8} {pct(xs, 50)*1e3:8.1f} {pct(xs, 99)*1e3:8.1f} {sum(xs)/len(xs)*1e3:8.1f}  {where[name]}")
site, package = pct(times["site"], 50), pct(times["package"], 50)
print(f"\npackage/ p50 / site-packages p50 = {package/site:.2f} (the bar: within 10%)")
pooled = metric('fnbox_cold_starts_total{function="package",sandbox="v2",from="pool"')
print(f"cold starts of 'package' served from the warm pool: {pooled:.0f} of {calls}")
PY
