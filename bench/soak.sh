#!/usr/bin/env bash
# Soak of fnbox serve under mixed hostile load, on loopback only: wrk at 200 connections on a
# hello function, idle clients, slowloris headers and slow bodies, a function flooding stdout
# and one crashing in a loop. Prints the server's RSS, its open descriptors and the p99 of a
# neighbour function (a second hello, lightly loaded) at the start and the end, and the
# neighbour's p99 on a quiet server for comparison. Passing: RSS and fds flat (end within
# 1.25x of start, plus slack), the neighbour's p99 within 2x of quiet.
#
#   sudo bench/soak.sh                 (10 minutes)
#   sudo DURATION=180 bench/soak.sh    (seconds; at least 60)
#
# Needs wrk (installed with apt-get if missing) and python3 (the slow clients).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-600}
FNBOX=${FNBOX:-target/release/fnbox}
[ "$(id -u)" = 0 ] || { echo "bench/soak.sh: run as root (sandboxes need namespaces and cgroups)" >&2; exit 1; }
[ "$DURATION" -ge 60 ] || { echo "bench/soak.sh: DURATION=$DURATION is too short: give 60 s or more" >&2; exit 1; }
if ! command -v wrk >/dev/null; then
  echo "bench/soak.sh: wrk is missing: installing it with apt-get" >&2
  apt-get install -y wrk >/dev/null || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi
command -v python3 >/dev/null || { echo "bench/soak.sh: python3 is missing (the slow clients)" >&2; exit 1; }
[ -x "$FNBOX" ] || cargo build --release -q
. bench/lib.sh # (the script runs from the repository root)
bench_scratch
PORT=$(free_port)

# Every client here is on 127.0.0.1 (about 600 connections): the per-client cap is raised so
# that it measures the other limits.
"$FNBOX" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA/serve" --cgroup-parent fnbox/soak \
  --max-connections-per-client 2048 2>"$DATA/serve.log" &
SERVER=$!
PIDS+=("$SERVER")
wait_healthy "$PORT"
export FNBOX_SERVER="http://127.0.0.1:$PORT" FNBOX_DATA_DIR="$DATA/serve"
URL="http://127.0.0.1:$PORT"

mkdir -p "$DATA/flood" "$DATA/crashy"
cat >"$DATA/flood/handler.py" <<'EOF'
import sys
def handle(event, context):
    line = "x" * 1000
    for i in range(2000):
        print(i, line)
    sys.stdout.write("y" * (1 << 20))  # a long line, ended by the next call's first print
    return "flooded"
EOF
cat >"$DATA/crashy/handler.py" <<'EOF'
import os
def handle(event, context):
    os._exit(1)
EOF
"$FNBOX" deploy hello examples/hello-python --runtime python3 --max-scale 4 --concurrency 8 --max-queue 250 >/dev/null
"$FNBOX" deploy neighbour examples/hello-python --runtime python3 --max-scale 1 --concurrency 4 >/dev/null
"$FNBOX" deploy flood "$DATA/flood" --runtime python3 --max-scale 1 >/dev/null
"$FNBOX" deploy crashy "$DATA/crashy" --runtime python3 --max-scale 1 >/dev/null

# The neighbour's p99 in ms, over 10 s at 4 connections.
p99() {
  wrk -t1 -c4 -d10s --latency "$URL/fn/neighbour/" | awk '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    $1 == "99%" { p99 = ms($2) } END { printf "%.2f\n", p99 }'
}
rss_mib() { awk '/^VmRSS:/ { printf "%.1f\n", $2 / 1024 }' "/proc/$SERVER/status"; }
fds() { ls "/proc/$SERVER/fd" | wc -l; }

curl -sf "$URL/fn/neighbour/" >/dev/null
wrk -t1 -c4 -d2s "$URL/fn/neighbour/" >/dev/null
QUIET=$(p99)

# Idle clients, slowloris headers (a header line a second) and slow bodies (6 MiB declared,
# 1 KiB a second), each reconnecting when the server drops it.
cat >"$DATA/slow.py" <<'EOF'
import asyncio, sys, time
port, end = int(sys.argv[1]), time.time() + float(sys.argv[2])
async def client(first, then):
    while time.time() < end:
        try:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            if first:
                w.write(first)
            while time.time() < end:
                if then:
                    w.write(then)
                await w.drain()
                try:
                    if await asyncio.wait_for(r.read(4096), 1.0) == b"":
                        break
                except asyncio.TimeoutError:
                    pass
            w.close()
        except OSError:
            await asyncio.sleep(1)
async def main():
    body = b"POST /fn/hello/ HTTP/1.1\r\nHost: x\r\nContent-Length: 6291455\r\n\r\n"
    await asyncio.gather(
        *[client(None, None) for _ in range(300)],
        *[client(b"GET /fn/hello/ HTTP/1.1\r\nHost: x\r\n", b"X-a: b\r\n") for _ in range(50)],
        *[client(body, b"a" * 1024) for _ in range(20)])
asyncio.run(main())
EOF
python3 "$DATA/slow.py" "$PORT" "$DURATION" &
PIDS+=($!)
wrk -t2 -c200 -d"${DURATION}s" "$URL/fn/hello/" >"$DATA/wrk.txt" &
PIDS+=($!)
END=$((SECONDS + DURATION))
(while [ $SECONDS -lt $END ]; do curl -s -o /dev/null "$URL/fn/flood/"; done) &
PIDS+=($!)
(while [ $SECONDS -lt $END ]; do curl -s -o /dev/null "$URL/fn/crashy/"; sleep 0.2; done) &
PIDS+=($!)

sleep 20  # the load's instances started
RSS0=$(rss_mib) FDS0=$(fds) P0=$(p99)
echo "bench/soak.sh: start measured; soaking for $DURATION s in all" >&2
sleep $((END - SECONDS - 15 > 0 ? END - SECONDS - 15 : 0))
RSS1=$(rss_mib) FDS1=$(fds) P1=$(p99)
wait "${PIDS[@]:1}" 2>/dev/null || true
kill -0 "$SERVER" 2>/dev/null || { echo "bench/soak.sh: the server died; its log:" >&2; tail -20 "$DATA/serve.log" >&2; exit 1; }

printf '%-8s %10s %8s %18s\n' "" "RSS MiB" "fds" "neighbour p99 ms"
printf '%-8s %10s %8s %18s\n' "quiet" "" "" "$QUIET"
printf '%-8s %10s %8s %18s\n' "start" "$RSS0" "$FDS0" "$P0"
printf '%-8s %10s %8s %18s\n' "end" "$RSS1" "$FDS1" "$P1"
grep -E "Requests/sec|Non-2xx|Socket errors" "$DATA/wrk.txt" | sed 's/^/hello under wrk -c200: /'
awk -v r0="$RSS0" -v r1="$RSS1" -v f0="$FDS0" -v f1="$FDS1" -v q="$QUIET" -v p1="$P1" 'BEGIN {
  ok = 1
  if (r1 > r0 * 1.25 + 16) { print "RSS grew: " r0 " -> " r1 " MiB"; ok = 0 }
  if (f1 > f0 * 1.25 + 32) { print "fds grew: " f0 " -> " f1; ok = 0 }
  if (p1 > 2 * q) { printf "neighbour p99 %.2f ms is over 2x the quiet %.2f ms\n", p1, q; ok = 0 }
  print (ok ? "PASS" : "FAIL"); exit !ok }'
