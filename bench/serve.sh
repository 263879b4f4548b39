#!/usr/bin/env bash
# Warm latency and throughput of the Python hello function (examples/hello-python) called
# through fnbox serve, against the physical floor: the same runtime wrapper and handler run
# natively on TCP, with no gateway and no sandbox. Printed side by side with the ratios.
#
#   sudo bench/serve.sh [SECONDS] [CONNECTIONS...]      (default: 10 s, 1 and 4 connections)
#
# The function gets --memory 2048: its CPU share (1.12 vCPU) is more than the one core a
# Python process can use, so the quota does not slow it and the two sides get the same CPU.
# --max-scale 1 --concurrency 8: one instance serving concurrent connections, as the one bare
# process does (a thread per connection in both). Needs wrk (apt-get install wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
shift || true
CONNS=("$@")
[ ${#CONNS[@]} -gt 0 ] || CONNS=(1 4)
FNBOX=${FNBOX:-target/release/fnbox}
[ "$(id -u)" = 0 ] || { echo "bench/serve.sh: run as root (sandboxes need namespaces and cgroups)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "bench/serve.sh: wrk is missing: apt-get install wrk" >&2; exit 1; }
[ -x "$FNBOX" ] || cargo build --release -q
. bench/lib.sh # (the script runs from the repository root)
bench_scratch
FN_PORT=$(free_port)
BARE_PORT=$(free_port)

"$FNBOX" serve --listen "127.0.0.1:$FN_PORT" --data-dir "$DATA" --cgroup-parent fnbox/bench 2>"$DATA/serve.log" &
PIDS+=($!)
wait_healthy "$FN_PORT"
export FNBOX_SERVER="http://127.0.0.1:$FN_PORT" FNBOX_DATA_DIR="$DATA"
"$FNBOX" deploy hello examples/hello-python --runtime python3 --memory 2048 --max-scale 1 --concurrency 8 >/dev/null

(cd examples/hello-python && FNBOX_LISTEN_TCP="127.0.0.1:$BARE_PORT" exec python3 ../../crates/platform/src/runtimes/wrapper.py handler.handle) &
PIDS+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$BARE_PORT/" >/dev/null && break; sleep 0.1; done

FN_URL="http://127.0.0.1:$FN_PORT/fn/hello/"
BARE_URL="http://127.0.0.1:$BARE_PORT/"
[ "$(curl -s "$FN_URL")" = "$(curl -s "$BARE_URL")" ] || { echo "bench/serve.sh: the two sides answer differently" >&2; exit 1; }

# wrk --latency → "p50_ms p99_ms requests_per_s"
measure() {
  wrk -t1 -c"$2" -d"$DUR"s --latency "$1" | awk '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    $1 == "50%" { p50 = ms($2) } $1 == "99%" { p99 = ms($2) } $1 == "Requests/sec:" { rps = $2 }
    END { printf "%.3f %.3f %.0f\n", p50, p99, rps }'
}

printf '%-12s %-6s %10s %10s %10s\n' "side" "conns" "p50 ms" "p99 ms" "req/s"
for c in "${CONNS[@]}"; do
  wrk -t1 -c"$c" -d1s "$FN_URL" >/dev/null  # warm both
  wrk -t1 -c"$c" -d1s "$BARE_URL" >/dev/null
  read -r b50 b99 brps < <(measure "$BARE_URL" "$c")
  read -r f50 f99 frps < <(measure "$FN_URL" "$c")
  printf '%-12s %-6s %10s %10s %10s\n' "bare python" "$c" "$b50" "$b99" "$brps"
  printf '%-12s %-6s %10s %10s %10s\n' "fnbox" "$c" "$f50" "$f99" "$frps"
  awk -v b50="$b50" -v f50="$f50" -v brps="$brps" -v frps="$frps" 'BEGIN {
    printf "  => fnbox: %.0f%% of the bare throughput (target >= 70%%), p50 overhead %.3f ms (target <= 0.3 ms)\n",
      100 * frps / brps, f50 - b50 }'
done
