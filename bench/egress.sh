#!/usr/bin/env bash
# Egress, side by side in one run:
#
#   1. HTTP GET throughput to a local "internet" server (a network namespace at 198.19.77.1,
#      RFC 2544's benchmarking range, routed from the host through a veth pair) with wrk,
#      from the host and from `fnbox run --network egress` in v1 and v2: requests/s of a
#      small body over kept-alive connections, and MB/s of an 8 MiB body; p50 and p99
#      latency; the sandbox/host ratios (target >= 0.8). The sandboxes get the 4G tier (2.24
#      vCPU: no CPU quota on this 2-core machine), so what differs is the network path, not
#      a tier's CPU share; the host's wrk runs in a cgroup beside theirs.
#   2. What making a sandbox's link costs a start: `fnbox run -- /bin/true` with --network
#      none and egress (not pooled: the set-up is on the path), p50 and p99 with hyperfine;
#      and cold calls of a Python function deployed with --network egress and none, served
#      from the warm pool (pooled: the link was made before the claim), p50 and p99.
#
#   sudo bench/egress.sh [SECONDS] [RUNS] [CALLS]     (default: 5 s per wrk run, 50 starts,
#                                                       20 cold calls per function)
# Needs: wrk, hyperfine, python3 (apt-get install wrk hyperfine), nftables, iproute2.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-5}
RUNS=${2:-50}
CALLS=${3:-20}
FNBOX=${FNBOX:-target/release/fnbox}
[ "$(id -u)" = 0 ] || { echo "bench/egress.sh: run as root (sandboxes need namespaces and cgroups)" >&2; exit 1; }
for t in wrk hyperfine python3 nft ip curl; do
  command -v $t >/dev/null || { echo "bench/egress.sh: $t is missing: apt-get install wrk hyperfine nftables iproute2 curl" >&2; exit 1; }
done
[ -x "$FNBOX" ] || cargo build --release -q
FNBOX=$(realpath "$FNBOX")
OUT=$(mktemp -d)
NS=fnbxb-inet-$$
LINK=fxb$$
SERVER_PID= SERVE_PID=
# The host's wrk runs in a cgroup beside the sandboxes' (fnbox/), not in the shell's: on a
# shared machine the shell's cgroup competes with everything else, the sandboxes' does not.
if [ -d /sys/fs/cgroup/cpu ]; then HOSTCG=/sys/fs/cgroup/cpu/fnbox/bench-egress-host-$$; else HOSTCG=/sys/fs/cgroup/fnbox/bench-egress-host-$$; fi
mkdir -p "$HOSTCG"
in_host_cgroup() { sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$HOSTCG" "$@"; }
cleanup() {
  [ -z "$SERVE_PID" ] || { kill "$SERVE_PID" 2>/dev/null || true; wait "$SERVE_PID" 2>/dev/null || true; }
  [ -z "$SERVER_PID" ] || kill "$SERVER_PID" 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  [ -z "$HOSTCG" ] || rmdir "$HOSTCG" 2>/dev/null || true
  rm -rf "$OUT"
}
trap cleanup EXIT

# The "internet": 198.19.77.1, an HTTP server (asyncio, keep-alive) with /small (1 KiB) and
# /big (8 MiB).
ip netns add "$NS"
ip link add "$LINK" type veth peer name veth0 netns "$NS"
ip addr add 198.19.77.254/24 dev "$LINK"
ip link set "$LINK" up
ip -n "$NS" addr add 198.19.77.1/24 dev veth0
ip -n "$NS" link set veth0 up
ip -n "$NS" link set lo up
ip -n "$NS" route add default via 198.19.77.254
ip netns exec "$NS" python3 - <<'PY' &
import asyncio
BODIES = {b"/small": b"x" * 1024, b"/big": b"x" * (8 << 20)}
async def serve(r, w):
    try:
        while True:
            head = await r.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1]
            body = BODIES.get(path, b"")
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
            w.write(body)
            await w.drain()
    except Exception:
        w.close()
async def main():
    s = await asyncio.start_server(serve, "198.19.77.1", 8080, backlog=1024)
    await s.serve_forever()
asyncio.run(main())
PY
SERVER_PID=$!
for _ in $(seq 100); do curl -sf -o /dev/null http://198.19.77.1:8080/small && break; sleep 0.1; done

echo "== 1. HTTP GET to the local internet (wrk, ${SECS} s each, 1 thread, 8 connections)"
wrk_in() { # label, then the command prefix that runs wrk
  local label=$1; shift
  for path in small big; do
    "$@" wrk -t1 -c8 -d"${SECS}s" --latency "http://198.19.77.1:8080/$path" >"$OUT/$label-$path.txt" 2>&1 || {
      echo "wrk failed in $label:"; cat "$OUT/$label-$path.txt"; exit 1; }
  done
}
# Three rounds, interleaved (the machine's load drifts); each figure is the median of its three.
for round in 1 2 3; do
  wrk_in "host.$round" in_host_cgroup
  wrk_in "v1.$round" "$FNBOX" run --sandbox v1 --memory 4G --network egress --
  wrk_in "v2.$round" "$FNBOX" run --sandbox v2 --memory 4G --network egress --
done
python3 - "$OUT" <<'PY'
import re, sys
out = sys.argv[1]
def parse(label, path):
    t = open(f"{out}/{label}-{path}.txt").read()
    unit = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    lat = {}
    for p in ("50", "99"):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", t, re.M)
        lat[p] = float(m.group(1)) * unit[m.group(2)]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
    m = re.search(r"Transfer/sec:\s+([\d.]+)(B|KB|MB|GB)", t)
    mbs = float(m.group(1)) * {"B": 1e-6, "KB": 1e-3, "MB": 1.0, "GB": 1e3}[m.group(2)]
    return rps, mbs, lat
print(f"{'from':6} {'small req/s':>12} {'p50 ms':>8} {'p99 ms':>8} {'big MB/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
def median_of_rounds(label, path):
    runs = sorted((parse(f"{label}.{r}", path) for r in (1, 2, 3)), key=lambda x: x[0] if path == "small" else x[1])
    return runs[1]
res = {}
for label in ("host", "v1", "v2"):
    s, b = median_of_rounds(label, "small"), median_of_rounds(label, "big")
    res[label] = (s, b)
    print(f"{label:6} {s[0]:12.0f} {s[2]['50']:8.2f} {s[2]['99']:8.2f} {b[1]:10.0f} {b[2]['50']:8.2f} {b[2]['99']:8.2f}")
for label in ("v1", "v2"):
    s, b = res[label]
    hs, hb = res["host"]
    print(f"{label}/host: small {s[0]/hs[0]:.2f}x req/s, big {b[1]/hb[1]:.2f}x MB/s (target >= 0.80)")
PY

echo
echo "== 2a. Start-to-exit of /bin/true, not pooled ($RUNS runs each): the link's set-up is on the path"
"$FNBOX" run --network egress -- /bin/true
hyperfine -N -w 3 -r "$RUNS" --export-json "$OUT/start.json" \
  --command-name "v2 none" "$FNBOX run --network none -- /bin/true" \
  --command-name "v2 egress" "$FNBOX run --network egress -- /bin/true" \
  --command-name "v1 none" "$FNBOX run --sandbox v1 --network none -- /bin/true" \
  --command-name "v1 egress" "$FNBOX run --sandbox v1 --network egress -- /bin/true" >/dev/null
python3 - "$OUT/start.json" <<'PY'
import json, sys
def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(p / 100 * len(xs) + 0.5)) - 1))]
r = {x["command"]: x["times"] for x in json.load(open(sys.argv[1]))["results"]}
for k in ("v1", "v2"):
    n, e = r[f"{k} none"], r[f"{k} egress"]
    print(f"{k}: none p50 {pct(n,50)*1e3:.1f} ms p99 {pct(n,99)*1e3:.1f} ms; egress p50 {pct(e,50)*1e3:.1f} ms "
          f"p99 {pct(e,99)*1e3:.1f} ms; the link costs {(pct(e,50)-pct(n,50))*1e3:+.1f} ms at p50")
PY

echo
echo "== 2b. Cold calls from the warm pool ($CALLS each, v2, python3): the link is made before the claim"
DATA=$OUT/serve
mkdir -p "$DATA"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$FNBOX" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA" --cgroup-parent fnbox/bench-egress 2>"$OUT/serve.log" &
SERVE_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
export FNBOX_SERVER="http://127.0.0.1:$PORT" FNBOX_DATA_DIR="$DATA"
"$FNBOX" deploy py-egress examples/hello-python --runtime python3 --network egress >/dev/null
"$FNBOX" deploy py-none examples/hello-python --runtime python3 --network none >/dev/null
PYTHONPATH=bench python3 - "$PORT" "$(cat "$DATA/admin.token")" "$CALLS" <<'PY'
import http.client, sys, time
import prom
port, token, calls = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
def request(method, path, admin=False):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    c.request(method, path, headers={"Authorization": f"Bearer {token}"} if admin else {})
    r = c.getresponse(); body = r.read(); c.close()
    return r.status, body
def metrics():
    return prom.scrape(port, token)
def settle():
    end = time.monotonic() + 20
    while time.monotonic() < end:
        m = metrics()
        ready = [v for k, v in m.items() if k.startswith("fnbox_warm_sandboxes{") and 'state="ready"' in k]
        starting = [v for k, v in m.items() if k.startswith("fnbox_warm_sandboxes{") and 'state="starting"' in k]
        if len(ready) == 2 and min(ready) >= 1 and sum(starting) == 0:
            break
        time.sleep(0.05)
    time.sleep(0.2)
def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(p / 100 * len(xs) + 0.5)) - 1))]
times = {"py-egress": [], "py-none": []}
for _ in range(calls):
    for name in times:
        assert request("DELETE", f"/api/v1/functions/{name}/instances", admin=True)[0] == 200
        settle()
        t = time.perf_counter()
        status, body = request("GET", f"/fn/{name}/")
        times[name].append(time.perf_counter() - t)
        assert status == 200, (name, status, body)
for name, xs in times.items():
    print(f"{name:10} p50 {pct(xs,50)*1e3:6.1f} ms  p99 {pct(xs,99)*1e3:6.1f} ms")
e, n = pct(times["py-egress"], 50), pct(times["py-none"], 50)
print(f"pooled: egress/none p50 = {e/n:.2f}x ({(e-n)*1e3:+.1f} ms)")
m = metrics()
for shelf in ('runtime="python3",memory_mb="256"', 'runtime="python3",memory_mb="256",network="none"'):
    hit = m.get(f"fnbox_warm_takes_total{{{shelf},result=\"hit\"}}", 0)
    miss = m.get(f"fnbox_warm_takes_total{{{shelf},result=\"miss\"}}", 0)
    print(f"warm pool {shelf}: {hit:.0f} hits, {miss:.0f} misses")
PY
