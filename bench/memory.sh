#!/usr/bin/env bash
# Memory of N forked readers against one, in v1 and v2: a Python parent with 200 MB of live
# data forks N multiprocessing workers that read all of it (crates/fnbox/tests/memory/cow.py).
# Copy-on-write should keep the total close to one worker's. Target: 8 workers <= 1.5x one
# worker's total, in both sandboxes.
#
#   sudo bench/memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
FNBOX=${FNBOX:-target/release/fnbox}
[ "$(id -u)" = 0 ] || { echo "bench/memory.sh: run as root" >&2; exit 1; }
[ -x "$FNBOX" ] || cargo build --release -q
T=crates/fnbox/tests/memory
peak() { # kind workers -> peak MiB
  "$FNBOX" run --sandbox "$1" --memory 2G --stats --bind "$PWD/$T:/t:ro" -- python3 /t/cow.py "$2" 2>&1 >/dev/null \
    | sed -n 's/.*peak memory \([0-9.]*\) MiB.*/\1/p'
}
printf "%-8s" "workers"; for n in 1 2 4 8; do printf "%10s" "$n"; done; printf "%14s\n" "8 vs 1"
for kind in v1 v2; do
  printf "%-8s" "$kind"
  vals=()
  for n in 1 2 4 8; do v=$(peak "$kind" "$n"); vals+=("$v"); printf "%9s" "$v"; printf "M"; done
  python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); print(f'{b/a:13.2f}x')" "${vals[0]}" "${vals[3]}"
done
echo "(peak memory of the sandbox's cgroup, MiB; target: 8 workers <= 1.5x one worker)"
