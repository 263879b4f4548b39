#!/usr/bin/env bash
# Cold starts in bursts, before and after, in one run: 20 distinct Python functions deployed
# at one memory tier and sandbox kind, each called once
#
#   (a) back to back (the next call when the last answered), then
#   (b) all 20 at once (their instances stopped first, so every call is a cold start again),
#
# at 128, 256 and 1024 MiB, in v1 and v2, against two fnbox binaries: BEFORE (none by default:
# give another build to compare with) and AFTER (default this tree's), case by case in turn. Prints p50 and p99
# of the call latency (client side, HTTP over loopback) per case and binary, the AFTER/BEFORE
# ratios, the warm pool's takes (hit, pending, miss) per case, and the CPU time a call cost (the
# whole machine's busy time during the shape, divided by the calls: run it on a quiet machine).
# That cost bounds the at-once shape from below: its p50 cannot beat ~10 x cpu/call / cores.
#
#   sudo bench/burst.sh                     (this tree's binary, every case)
#   sudo BEFORE=/path/to/other/fnbox AFTER=target/release/fnbox TIERS="256" KINDS="v2" bench/burst.sh
#
# Each binary runs its own `fnbox serve` (own data directory and cgroup parent) with its default
# flags but --warm-memory WARM_MEMORY (default 1024 MiB, so the budget is not what is measured).
# Before each case's (a) and (b), the bench waits (at most 30 s) until no pre-warmed sandbox is
# starting: every case meets a machine at rest, with whatever the pool chose to keep.
# Issue 15's targets: v2 p50 <= 10 ms and p99 <= 100 ms at every tier; v1 p50 <= 100 ms at 256.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
BEFORE=${BEFORE:-}
AFTER=${AFTER:-target/release/fnbox}
TIERS=${TIERS:-128 256 1024}
KINDS=${KINDS:-v1 v2}
COUNT=${COUNT:-20}
WARM_MEMORY=${WARM_MEMORY:-1024}
[ "$(id -u)" = 0 ] || { echo "bench/burst.sh: run as root (sandboxes need namespaces and cgroups)" >&2; exit 1; }
[ -x "$AFTER" ] || { echo "bench/burst.sh: no fnbox binary at AFTER=$AFTER: cargo build --release -p fnbox" >&2; exit 1; }
if [ -n "$BEFORE" ] && [ ! -x "$BEFORE" ]; then
  echo "bench/burst.sh: no fnbox binary at BEFORE=$BEFORE (build it, or leave BEFORE unset to measure AFTER only)" >&2
  exit 1
fi
bench_scratch

# COUNT distinct functions: same shape, their own code (a module-level constant and a name).
for i in $(seq 1 "$COUNT"); do
  mkdir -p "$DATA/code/f$i"
  cat >"$DATA/code/f$i/handler.py" <<EOF
import json
WHO = "f$i"
def handle(event, context):
    return {"statusCode": 200, "body": json.dumps({"who": WHO, "memory": context["memoryLimitInMb"]})}
EOF
done

# One `fnbox serve` per binary, side by side; each case runs on BEFORE, then on AFTER, so both
# meet the same machine (load from elsewhere changes over the minutes a run takes).
serve() { # LABEL BINARY: starts it; sets PORT_<LABEL>
  local label=$1 bin=$2 port
  port=$(free_port)
  mkdir -p "$DATA/$label"
  "$bin" serve --listen "127.0.0.1:$port" --data-dir "$DATA/$label" --cgroup-parent "fnbox/bench-burst-$label" \
    --warm-memory "$WARM_MEMORY" 2>"$DATA/$label/serve.log" &
  PIDS+=($!)
  wait_healthy "$port"
  eval "PORT_$label=$port"
}

one_case() { # LABEL BINARY KIND MB
  local label=$1 bin=$2 kind=$3 mb=$4 port dir
  port=$(eval echo "\$PORT_$label")
  dir="$DATA/$label"
  for i in $(seq 1 "$COUNT"); do
    FNBOX_SERVER="http://127.0.0.1:$port" FNBOX_DATA_DIR="$dir" \
      "$bin" deploy "b-$kind-$mb-$i" "$DATA/code/f$i" --runtime python3 --sandbox "$kind" --memory "$mb" >/dev/null
  done
  python3 bench/burst_calls.py "$port" "$(cat "$dir/admin.token")" "$label" "$kind" "$mb" "$COUNT" >>"$DATA/results.tsv"
  for i in $(seq 1 "$COUNT"); do
    FNBOX_SERVER="http://127.0.0.1:$port" FNBOX_DATA_DIR="$dir" "$bin" rm "b-$kind-$mb-$i" >/dev/null
  done
}

: >"$DATA/results.tsv"
[ -z "$BEFORE" ] || serve before "$BEFORE"
serve after "$AFTER"
for mb in $TIERS; do
  for kind in $KINDS; do
    echo "== $kind, $mb MiB"
    [ -z "$BEFORE" ] || one_case before "$BEFORE" "$kind" "$mb"
    one_case after "$AFTER" "$kind" "$mb"
  done
done
python3 bench/burst_calls.py --report "$DATA/results.tsv"
