#!/usr/bin/env bash
# What path-heavy programs pay in each sandbox (issue 15), native, v1 and v2 in the same run:
#   1. per-call cost (us) of stat, lstat of a relative path, open+close and fstat, in a loop;
#   2. `python3 -c pass` and a Python program importing 45 stdlib modules;
#   3. `git status` on a generated tree of 20,000 tracked files.
# 2 and 3 are timed inside one sandbox per kind (the mean of repeated runs), so sandbox
# creation does not hide the syscall costs. Each figure is the best of ROUNDS (3) rounds.
# Targets: emulated stat <= 8 us, open+close <= 15 us, v2 <= 1.3x native for both Python
# figures, v2 <= 4x native for git status.
#
#   sudo bench/paths.sh [RUNS]     (FNBOX=path/to/fnbox: another build; FILES=, ROUNDS=)
#   BEFORE=path/to/other/fnbox adds its v2 as a fourth kind, "v2-before", taking turns with
#   the others: a before/after comparison that load on the machine cannot skew.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
RUNS=${1:-10}
FNBOX=${FNBOX:-target/release/fnbox}
FILES=${FILES:-20000}
BEFORE=${BEFORE:-}
KINDS="native v1 v2${BEFORE:+ v2-before}"
[ "$(id -u)" = 0 ] || { echo "bench/paths.sh: run as root" >&2; exit 1; }
for t in gcc git; do command -v $t >/dev/null || { echo "bench/paths.sh: apt-get install $t" >&2; exit 1; }; done
[ -x "$FNBOX" ] || { echo "bench/paths.sh: no $FNBOX (cargo build --release)" >&2; exit 1; }
[ -z "$BEFORE" ] || [ -x "$BEFORE" ] || { echo "bench/paths.sh: no $BEFORE" >&2; exit 1; }
PY=/usr/bin/python3   # the host image's interpreter (not a pyenv shim)
bench_scratch
W=$DATA
# Native runs share the CPU as a sandbox does: in a cgroup of their own next to the sandboxes'
# (cgroup v1's cpu hierarchy), not among every other process of the machine.
NATIVE_CG=/sys/fs/cgroup/cpu/fnbox/bench-paths-$$
if [ -d "${NATIVE_CG%/*}" ]; then mkdir "$NATIVE_CG"; else NATIVE_CG=; fi
trap 'bench_cleanup; [ -z "$NATIVE_CG" ] || rmdir "$NATIVE_CG"' EXIT

cat > "$W/loop.c" <<'C'
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
static struct timespec t0;
static void start(void) { clock_gettime(CLOCK_MONOTONIC, &t0); }
static double us(int n) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
  return ((t.tv_sec - t0.tv_sec) * 1e9 + (t.tv_nsec - t0.tv_nsec)) / 1e3 / n; }
int main(int argc, char **argv) {
  int n = atoi(argv[1]); struct stat st;
  for (int i = 0; i < 1000; i++) stat("/usr/bin/true", &st);
  start(); for (int i = 0; i < n; i++) stat("/usr/bin/true", &st); double s = us(n);
  if (chdir("/usr/bin") != 0) return 1;
  start(); for (int i = 0; i < n; i++) lstat("true", &st); double r = us(n);
  start(); for (int i = 0; i < n; i++) close(open("/usr/bin/true", O_RDONLY)); double o = us(n);
  int fd = open("/usr/bin/true", O_RDONLY);
  start(); for (int i = 0; i < n; i++) fstat(fd, &st); double f = us(n);
  printf("%.2f %.2f %.2f %.2f\n", s, r, o, f);
  return 0;
}
C
gcc -O2 -o "$W/loop" "$W/loop.c"

: > "$W/pass.py"
MODS="json asyncio sqlite3 decimal datetime email.message http.client urllib.request logging argparse csv
pathlib subprocess threading concurrent.futures xml.etree.ElementTree tempfile shutil hashlib hmac base64
uuid random statistics fractions typing dataclasses enum textwrap string struct zipfile tarfile gzip bz2
lzma pickle copy pprint unittest socket ssl selectors inspect ipaddress"
for m in $MODS; do echo "import $m"; done > "$W/imports.py"
[ "$(wc -l < "$W/imports.py")" = 45 ] || { echo "bench/paths.sh: the module list is not 45 long" >&2; exit 1; }

# The tree: FILES files in 200 directories, committed, so `git status` has every one to check.
mkdir -p "$W/repo"
python3 - "$W/repo" "$FILES" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, f"d{i % 200:03}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i}.txt"), "w") as f:
        f.write(f"{i}\n")
PY
git -C "$W/repo" init -q
git -C "$W/repo" add -A
git -C "$W/repo" -c user.name=bench -c user.email=bench@localhost commit -qm tree
git -C "$W/repo" status >/dev/null   # a clean index, as a developer's

# times.sh N CMD...: runs CMD N times (after one warm-up), prints the mean wall time in us.
cat > "$W/times.sh" <<'SH'
#!/bin/sh
n=$1; shift
"$@" >/dev/null || { echo "times.sh: $* failed" >&2; exit 1; }
t0=$(date +%s%N); i=0; while [ $i -lt $n ]; do "$@" >/dev/null || exit 1; i=$((i+1)); done; t1=$(date +%s%N)
echo $(( (t1 - t0) / n / 1000 ))
SH
chmod +x "$W/times.sh"

# inside KIND CMD...: CMD run as KIND (native, v1, v2 or v2-before) with the scratch directory
# at /w.
inside() {
  local kind=$1; shift
  if [ "$kind" = native ]; then
    # The environment a sandbox gets, not this shell's (PYTHON*, a pyenv's...).
    (if [ -n "$NATIVE_CG" ]; then echo $BASHPID > "$NATIVE_CG/cgroup.procs"; fi
     cd "$W" && env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "${@//\/w\//$W/}")
  elif [ "$kind" = v2-before ]; then
    "$BEFORE" run --memory 4G --sandbox v2 --bind "$W:/w" --workdir /w -- "$@"
  else
    "$FNBOX" run --memory 4G --sandbox "$kind" --bind "$W:/w" --workdir /w -- "$@"
  fi
}

echo "fnbox: $FNBOX${BEFORE:+, v2-before: $BEFORE}, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
# The machine may be shared: every figure is the best of ROUNDS rounds, the kinds taking turns
# within a round, so a burst of load elsewhere does not land on one kind only.
ROUNDS=${ROUNDS:-3}
best() { tr ' ' '\n' | grep . | sort -g | head -1; }

echo "1. Per-call cost (us), 50000 calls each, best of $ROUNDS rounds"
declare -A CALLS
for _ in $(seq "$ROUNDS"); do
  for kind in $KINDS; do CALLS[$kind]+="$(inside $kind /w/loop 50000);"; done
done
printf "   %-9s %9s %14s %11s %8s\n" "" "stat" "lstat relative" "open+close" "fstat"
for kind in $KINDS; do
  col() { echo "${CALLS[$kind]}" | tr ';' '\n' | grep . | cut -d' ' -f"$1" | tr '\n' ' ' | best; }
  printf "   %-9s %9s %14s %11s %8s\n" $kind "$(col 1)" "$(col 2)" "$(col 3)" "$(col 4)"
done
echo "   (targets, v2: stat <= 8 us, open+close <= 15 us)"

echo
echo "2, 3. Programs (ms, mean of $RUNS runs inside one sandbox, best of $ROUNDS rounds)"
printf "   %-22s %9s %9s %9s %10s%s\n" "" native v1 v2 v2/native "${BEFORE:+  v2-before  before/native}"
row() {
  local name=$1 target=$2; shift 2
  local -A t
  for _ in $(seq "$ROUNDS"); do
    for kind in $KINDS; do t[$kind]+="$(inside $kind /w/times.sh "$RUNS" "$@") "; done
  done
  local n v1 v2 b=0
  n=$(echo ${t[native]} | best); v1=$(echo ${t[v1]} | best); v2=$(echo ${t[v2]} | best)
  [ -z "$BEFORE" ] || b=$(echo ${t[v2-before]} | best)
  python3 -c "
n, a, v, b = $n / 1e3, $v1 / 1e3, $v2 / 1e3, $b / 1e3
extra = f'{b:11.1f} {b / n:13.2f}x' if b else ''
print(f'   {\"$name\":<22} {n:9.1f} {a:9.1f} {v:9.1f} {v / n:9.2f}x{extra}  (target <= $target)')"
}
row "python3 -c pass" 1.3x "$PY" /w/pass.py
row "import 45 modules" 1.3x "$PY" /w/imports.py
row "git status, $FILES files" 4x git -c safe.directory='*' -C /w/repo status
