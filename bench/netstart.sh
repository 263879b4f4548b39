#!/usr/bin/env bash
# What a sandbox's network costs its start as the host fills with egress sandboxes (issue 15,
# cold starts in bursts): CPU time (the launcher's and its `nft`'s, from wait4's rusage) and
# wall time of `fnbox run --sandbox v2 --network egress -- /bin/true`, with 0 and then LIVE
# (default 40) egress sandboxes already running on the host, against the peer in the same run:
# the same start with `--network none`. Each sandbox's guard table is one more table in the
# host's ruleset, and every `nft` transaction fetches all of them.
#
#   sudo bench/netstart.sh [RUNS]        (default 20 starts per figure; LIVE=40)
#   BEFORE=path/to/other/fnbox adds that build, taking turns with this one's (FNBOX=).
# Prints p50 and p99 per figure, the egress/none ratios, and the live sandboxes' nft processes'
# resident memory (host memory no sandbox is charged for).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-20}
LIVE=${LIVE:-40}
FNBOX=${FNBOX:-target/release/fnbox}
BEFORE=${BEFORE:-}
[ "$(id -u)" = 0 ] || { echo "bench/netstart.sh: run as root (sandboxes need namespaces and cgroups)" >&2; exit 1; }
command -v nft >/dev/null || { echo "bench/netstart.sh: nft is missing: apt-get install nftables" >&2; exit 1; }
[ -x "$FNBOX" ] || { echo "bench/netstart.sh: no $FNBOX (cargo build --release)" >&2; exit 1; }
[ -z "$BEFORE" ] || [ -x "$BEFORE" ] || { echo "bench/netstart.sh: no $BEFORE (build it, or leave BEFORE unset)" >&2; exit 1; }
LIVE_PIDS=()
cleanup() { [ ${#LIVE_PIDS[@]} = 0 ] || kill "${LIVE_PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT

measure() { # LABEL: one row per binary and network
  python3 - "$1" "$RUNS" "$FNBOX" "$BEFORE" <<'PY'
import os, subprocess, sys, time
label, runs, after, before = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
bins = ([("before", before)] if before else []) + [("after", after)]
res = {}
for _ in range(runs):
    for name, b in bins:           # taking turns: load from elsewhere meets both alike
        for net in ("none", "egress"):
            t = time.perf_counter()
            p = subprocess.Popen([b, "run", "--sandbox", "v2", "--network", net, "--", "/bin/true"])
            _, status, ru = os.wait4(p.pid, 0)
            wall = time.perf_counter() - t
            if status != 0:
                sys.exit(f"bench/netstart.sh: {b} run --network {net} failed ({status})")
            res.setdefault((name, net), []).append((wall * 1e3, (ru.ru_utime + ru.ru_stime) * 1e3))
def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(p / 100 * len(xs) + 0.5)) - 1))]
for name, _ in bins:
    row = {}
    for net in ("none", "egress"):
        xs = res[(name, net)]
        row[net] = [pct([w for w, _ in xs], 50), pct([w for w, _ in xs], 99), pct([c for _, c in xs], 50), pct([c for _, c in xs], 99)]
    e, n = row["egress"], row["none"]
    print(f"{label:16} {name:7} " + " ".join(f"{v:7.1f}" for v in n + e) + f"   {e[0] / n[0]:5.2f}x {e[2] / n[2]:5.2f}x")
PY
}

echo "fnbox: $FNBOX${BEFORE:+, before: $BEFORE}, $(nproc) CPUs, $RUNS starts per figure"
echo "ms: wall p50 p99, CPU p50 p99 (launcher and nft); none, then egress; ratios egress/none (wall p50, CPU p50)"
printf "%-16s %-7s %31s %31s   %s\n" "host" "build" "none: wall p50 p99, cpu p50 p99" "egress: wall p50 p99, cpu p50 p99" "ratios"
measure "no sandbox"
for _ in $(seq 1 "$LIVE"); do
  "$FNBOX" run --sandbox v1 --network egress -- /bin/sleep 3600 >/dev/null 2>&1 &
  LIVE_PIDS+=($!)
done
# Wait (at most 60 s) until every live sandbox has its guard table.
for _ in $(seq 1 600); do
  [ "$(nft list tables 2>/dev/null | grep -c 'inet fnboxg')" -ge "$LIVE" ] && break
  sleep 0.1
done
tables=$(nft list tables 2>/dev/null | grep -c 'inet fnboxg' || true)
[ "$tables" -ge "$LIVE" ] || echo "bench/netstart.sh: only $tables of $LIVE live sandboxes have their guard table" >&2
rss=$(for p in $(pgrep -x nft); do awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null; done | awk '{s += $1; n++} END {printf "%d nft processes, %.0f MiB resident in all", n, s / 1024}')
echo "host memory with $tables sandboxes live: $rss (their guard processes: none of it charged to a sandbox)"
measure "$tables sandboxes"
