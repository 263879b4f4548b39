#!/usr/bin/env bash
# The Sentry's costs, measured side by side with native and v1 runs:
#   1. an emulated syscall: a stat() loop (per-call microseconds), with getppid (native in
#      both sandboxes) and open+close for comparison;
#   2. Python start-up, `python3 -c pass` and `import json, asyncio, sqlite3`, both as whole
#      `fnbox run` invocations and as repeated starts inside one sandbox (which isolates the
#      syscall overhead from sandbox creation);
#   3. the idle Sentry's resident memory.
#
#   sudo bench/sentry.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-30}
FNBOX=${FNBOX:-target/release/fnbox}
[ "$(id -u)" = 0 ] || { echo "bench/sentry.sh: run as root" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "bench/sentry.sh: apt-get install hyperfine" >&2; exit 1; }
[ -x "$FNBOX" ] || cargo build --release -q
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
cat > "$W/loop.c" <<'C'
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
static double us(struct timespec a, struct timespec b, int n) { return ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / 1e3 / n; }
int main(int argc, char **argv) {
  int n = atoi(argv[1]); struct stat st; struct timespec a, b;
  for (int i = 0; i < 1000; i++) stat("/usr/bin/true", &st);
  clock_gettime(CLOCK_MONOTONIC, &a); for (int i = 0; i < n; i++) stat("/usr/bin/true", &st); clock_gettime(CLOCK_MONOTONIC, &b);
  double s = us(a, b, n);
  clock_gettime(CLOCK_MONOTONIC, &a); for (int i = 0; i < n; i++) getppid(); clock_gettime(CLOCK_MONOTONIC, &b);
  double g = us(a, b, n);
  clock_gettime(CLOCK_MONOTONIC, &a); for (int i = 0; i < n; i++) close(open("/usr/bin/true", O_RDONLY)); clock_gettime(CLOCK_MONOTONIC, &b);
  printf("%.2f %.3f %.2f\n", s, g, us(a, b, n));
  return 0;
}
C
gcc -O2 -o "$W/loop" "$W/loop.c"
# Sandboxes run at --memory 4G (2.24 vCPU: no CPU throttling) so only the sandbox shows.
RUN=("$FNBOX" run --memory 4G --bind "$W:/w:ro")

echo "1. Per-call cost (us), 200000 calls each"
printf "%-8s %8s %10s %12s\n" "" "stat" "getppid" "open+close"
for kind in native v1 v2; do
  if [ $kind = native ]; then r=$("$W/loop" 200000); else r=$("${RUN[@]}" --sandbox $kind -- /w/loop 200000); fi
  set -- $r
  printf "%-8s %8s %10s %12s\n" $kind $1 $2 $3
  [ $kind = native ] && NATIVE_STAT=$1
  [ $kind = v2 ] && V2_STAT=$1
done
python3 -c "print(f'   emulated stat in v2: {float(\"$V2_STAT\"):.2f} us per call ({float(\"$V2_STAT\") - float(\"$NATIVE_STAT\"):.2f} us over native); target <= 8 us')"

echo
echo "2. Python start-up (ms, median of $RUNS)"
PY=/usr/bin/python3   # the host image's interpreter (not a pyenv shim)
: > "$W/pass.py"
echo "import json, asyncio, sqlite3" > "$W/imports.py"
cat > "$W/starts.sh" <<'SH'
#!/bin/sh
# Starts the interpreter N times on SCRIPT and prints the mean wall time per start, in us.
n=$1; script=$2
t0=$(date +%s%N); i=0; while [ $i -lt $n ]; do /usr/bin/python3 "$script"; i=$((i+1)); done; t1=$(date +%s%N)
echo $(( (t1 - t0) / n / 1000 ))
SH
chmod +x "$W/starts.sh"
for prog in pass imports; do
  hyperfine -N -w 3 -r "$RUNS" --export-json "$W/h.json" \
    -n native "$PY $W/$prog.py" \
    -n v1 "${RUN[*]} --sandbox v1 -- $PY /w/$prog.py" \
    -n v2 "${RUN[*]} --sandbox v2 -- $PY /w/$prog.py" >/dev/null
  inside_native=$(sh "$W/starts.sh" 20 "$W/$prog.py")
  inside_v1=$("${RUN[@]}" --sandbox v1 -- /w/starts.sh 20 /w/$prog.py)
  inside_v2=$("${RUN[@]}" --sandbox v2 -- /w/starts.sh 20 /w/$prog.py)
  python3 - "$W/h.json" "$(cat "$W/$prog.py")" "$inside_native" "$inside_v1" "$inside_v2" <<'PY'
import json, sys
r = {x["command"]: x["median"] * 1e3 for x in json.load(open(sys.argv[1]))["results"]}
n, v1, v2 = (int(x) / 1000 for x in sys.argv[3:6])
print(f"   python3 -c '{sys.argv[2] or 'pass'}'")
print(f"     whole fnbox run:  native {r['native']:6.1f}  v1 {r['v1']:6.1f}  v2 {r['v2']:6.1f}   v2/native {r['v2']/r['native']:.2f}x  v2/v1 {r['v2']/r['v1']:.2f}x")
print(f"     inside a sandbox: native {n:6.1f}  v1 {v1:6.1f}  v2 {v2:6.1f}   v2/native {v2/n:.2f}x   (target v2 <= 1.3x native)")
PY
done

echo
echo "3. Idle Sentry memory"
"$FNBOX" run --sandbox v2 -- sleep 3 &
sleep 1.5
for p in $(pgrep -f "fnbox run --sandbox v2 -- sleep 3"); do
  if grep -q "^Threads:.*[2-9]" "/proc/$p/status" && grep -q fnbox "/proc/$p/cgroup"; then
    echo "   Sentry pid $p: $(grep VmRSS /proc/$p/status | tr -s ' ' | cut -d' ' -f2-) resident (target <= 4 MiB)"
  fi
done
wait
