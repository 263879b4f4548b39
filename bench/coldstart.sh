#!/usr/bin/env bash
# Cold starts, side by side with the peers, in one run:
#
#   1. one-shot start-to-exit of /bin/true and python3 -c 'print(1)': native, bubblewrap, runc
#      (same host-/usr root filesystem), fnbox run --sandbox v1 and v2 (bench/start.sh);
#   2. the platform's cold invocation over HTTP: the first call of the Python and Node hello
#      functions (examples/) with no instance running, in sandbox v1 and v2, CALLS times each,
#      p50 and p99, and the ratios v2/v1; next to the bare interpreters' start on this machine.
#
#   sudo bench/coldstart.sh [CALLS] [START_RUNS]        (default: 30 cold calls, 50 runs)
#   sudo MEMORY=2048 bench/coldstart.sh 30 0             (the functions' tier, default 256; 0 runs:
#                                                         part 2 only)
#
# How a call is made cold: the function's instances are stopped through the admin API
# (DELETE /api/v1/functions/NAME/instances, which returns once they have ended), so the next
# call starts an instance. Between calls the bench waits until the warm pool has a ready
# sandbox for each shelf and none is starting: every call, v1 or v2, meets an idle machine, and
# the calls measure the pool at a rate of cold starts it keeps up with (its hits and misses
# are printed; v1 is pooled too since the start-up boost, its shelves labelled sandbox="v1"). Functions get the default tier (256 MiB: 0.14 vCPU, a CFS quota that stretches
# every interpreter start in a sandbox launched for the call) and are called in turn.
# Needs: hyperfine, bwrap, runc (apt-get install hyperfine bubblewrap runc), node.
set -euo pipefail
cd "$(dirname "$0")/.."
CALLS=${1:-30}
START_RUNS=${2:-50}
MEMORY=${MEMORY:-256}
FNBOX=${FNBOX:-target/release/fnbox}
[ "$(id -u)" = 0 ] || { echo "bench/coldstart.sh: run as root (sandboxes need namespaces and cgroups)" >&2; exit 1; }
for t in hyperfine node; do
  command -v $t >/dev/null || { echo "bench/coldstart.sh: $t is missing: apt-get install hyperfine nodejs" >&2; exit 1; }
done
[ -x "$FNBOX" ] || cargo build --release -q
export FNBOX

if [ "$START_RUNS" -gt 0 ]; then
  echo "== 1. One-shot starts (bench/start.sh $START_RUNS)"
  bench/start.sh "$START_RUNS"
fi

echo
echo "== 2. Cold invocations over HTTP ($CALLS per function, --memory $MEMORY)"
DATA=$(mktemp -d)
SERVE_PID=
cleanup() {
  [ -z "$SERVE_PID" ] || { kill "$SERVE_PID" 2>/dev/null || true; wait "$SERVE_PID" 2>/dev/null || true; }
  rm -rf "$DATA"
}
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$FNBOX" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA" --cgroup-parent fnbox/bench-coldstart 2>"$DATA/serve.log" &
SERVE_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
export FNBOX_SERVER="http://127.0.0.1:$PORT" FNBOX_DATA_DIR="$DATA"
for sb in v1 v2; do
  "$FNBOX" deploy "py-$sb" examples/hello-python --runtime python3 --sandbox "$sb" --memory "$MEMORY" >/dev/null
  "$FNBOX" deploy "node-$sb" examples/hello-node --runtime node --sandbox "$sb" --memory "$MEMORY" >/dev/null
done

# The bare interpreters' start, for reference (the issue's bar: a cold call below it).
hyperfine -N -w 3 -r 20 --export-json "$DATA/bare.json" \
  --command-name python3 "/usr/bin/python3 -c print(1)" --command-name node "/usr/bin/node -e 1" >/dev/null 2>&1

PYTHONPATH=bench python3 - "$PORT" "$(cat "$DATA/admin.token")" "$CALLS" "$DATA/bare.json" "$MEMORY" <<'PY'
import http.client, json, sys, time
import prom

port, token, calls, bare, memory = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
FUNCS = [("py-v1", "python3"), ("py-v2", "python3"), ("node-v1", "node"), ("node-v2", "node")]


def request(method, path, admin=False):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    c.request(method, path, headers={"Authorization": f"Bearer {token}"} if admin else {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


def metrics():
    return prom.scrape(port, token)


def settled(m):
    """Each warm shelf has a ready sandbox and none is starting."""
    ready = [v for k, v in m.items() if k.startswith("fnbox_warm_sandboxes{") and 'state="ready"' in k]
    starting = [v for k, v in m.items() if k.startswith("fnbox_warm_sandboxes{") and 'state="starting"' in k]
    # Python and Node shelves, v2's and (since v1 is pooled too) v1's.
    return len(ready) >= 2 and min(ready) >= 1 and sum(starting) == 0


def settle():
    end = time.monotonic() + 20
    while not settled(metrics()) and time.monotonic() < end:
        time.sleep(0.05)
    time.sleep(0.2)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(p / 100 * len(xs) + 0.5)) - 1))]


times = {f: [] for f, _ in FUNCS}
for i in range(calls):
    for name, _ in FUNCS:
        status, body = request("DELETE", f"/api/v1/functions/{name}/instances", admin=True)
        assert status == 200, body
        settle()
        t = time.perf_counter()
        status, body = request("GET", f"/fn/{name}/")
        times[name].append(time.perf_counter() - t)
        assert status == 200, (name, status, body)

b = {r["command"]: r["median"] for r in json.load(open(bare))["results"]}
print(f"bare interpreter start (median of 20, native): python3 {b['python3']*1e3:.1f} ms, node {b['node']*1e3:.1f} ms\n")
print(f"{'function':10} {'p50 ms':>8} {'p99 ms':>8} {'mean':>8} {'min':>8}")
for name, _ in FUNCS:
    xs = times[name]
    print(f"{name:10} {pct(xs, 50)*1e3:8.1f} {pct(xs, 99)*1e3:8.1f} {sum(xs)/len(xs)*1e3:8.1f} {min(xs)*1e3:8.1f}")
print()
for rt, target in (("py", 10), ("node", 20)):
    v1, v2 = pct(times[f"{rt}-v1"], 50), pct(times[f"{rt}-v2"], 50)
    print(f"{rt}: v2/v1 p50 = {v2/v1:.2f}x (target <= 0.5x); v2 p50 {v2*1e3:.1f} ms (target <= {target} ms)"
          f"; v2 p50 / bare start = {v2/b['python3' if rt == 'py' else 'node']:.2f}x")

m = metrics()
print("\nwhere the time goes: mean ms from the start of each cold start (fnbox_cold_start_phase_seconds)")
phases = ["sandbox_acquired", "process_started", "handler_imported", "ready", "first_response"]
print(f"{'function':10} {'from':5} " + " ".join(f"{p:>16}" for p in phases))
for name, _ in FUNCS:
    for origin in ("pool", "new"):
        row = []
        for p in phases:
            key = f'function="{name}",sandbox="{name[-2:]}",from="{origin}",process="zygote",phase="{p}"'
            n = m.get(f"fnbox_cold_start_phase_seconds_count{{{key}}}", 0)
            s = m.get(f"fnbox_cold_start_phase_seconds_sum{{{key}}}", 0)
            row.append(f"{s/n*1e3:16.1f}" if n else f"{'-':>16}")
        if any(c.strip() != "-" for c in row):
            print(f"{name:10} {origin:5} " + " ".join(row))
for rt in ("python3", "node"):
    hit = m.get(f'fnbox_warm_takes_total{{runtime="{rt}",memory_mb="{memory}",result="hit"}}', 0)
    miss = m.get(f'fnbox_warm_takes_total{{runtime="{rt}",memory_mb="{memory}",result="miss"}}', 0)
    print(f"warm pool, {rt}: {hit:.0f} cold starts served from the pool, {miss:.0f} without")
PY
