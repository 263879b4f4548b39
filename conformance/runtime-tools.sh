#!/usr/bin/env bash
# The OCI runtime-tools validation suite (opencontainers/runtime-tools, validation/*.t) against
# runc, fnbox-runc-v1 and fnbox-runc-v2, one line per file: runc / v1 / v2 (issue 16).
#
#   conformance/runtime-tools.sh SUITE_DIR [FILE_PATTERN]
#
# SUITE_DIR is a BUILT runtime-tools checkout: `runtimetest` and `validation/*/*.t` built in it
# (the tests find runtimetest and rootfs-amd64.tar.gz in their working directory, SUITE_DIR).
# It is another project's test code: never committed here. To build one with Debian's Go 1.19
# (golang-go), offline, from its vendored modules:
#   git clone https://github.com/opencontainers/runtime-tools SUITE_DIR && cd SUITE_DIR
#   # Go 1.21 APIs the tree uses, backported: a vendor/slices package (Contains, DeleteFunc);
#   # sync.OnceValue(s) and strings.CutPrefix replaced by local helpers in
#   # validate/capabilities and vendor/github.com/moby/sys/capability.
#   export GOFLAGS=-mod=vendor
#   go build -tags "netgo osusergo" -ldflags "-extldflags -static" -o runtimetest ./cmd/runtimetest
#   for f in $(find validation -name '*.go' | grep -v util); do go build -o "${f%.go}.t" "$f"; done
#
# A file PASSes when it exits 0 and its TAP output has no `not ok` (TODO lines aside); SKIP when
# it only skips; FAIL(n/m) when n of its m checks fail; TIMEOUT past RT_TIMEOUT seconds
# (default 60); ERR when it ends non-zero without a failed check (it could not run). Logs go to
# RT_OUT (default /var/tmp/fnbox-runtime-tools/RUNTIME/FILE.log). FNBOX: the fnbox binary
# (default: the one cargo built next to this script). The run fails when a file runc passes does
# not pass in v1 or v2.
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
suite="${1:-}"
pattern="${2:-}"
if [ -z "$suite" ] || [ ! -x "$suite/runtimetest" ] || ! ls "$suite"/validation/*/*.t >/dev/null 2>&1; then
    echo "conformance/runtime-tools.sh: no built runtime-tools suite given (${suite:-none})." >&2
    sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
suite="$(cd "$suite" && pwd)"
[ "$(id -u)" = 0 ] || { echo "conformance/runtime-tools.sh: run as root (containers need namespaces and cgroups)" >&2; exit 1; }
command -v runc >/dev/null || { echo "conformance/runtime-tools.sh: runc is missing: apt-get install runc" >&2; exit 1; }
FNBOX="$(realpath "${FNBOX:-$repo/target/release/fnbox}")"
[ -x "$FNBOX" ] || { echo "conformance/runtime-tools.sh: no fnbox binary at $FNBOX: cargo build --release -p fnbox" >&2; exit 1; }
TIMEOUT="${RT_TIMEOUT:-60}"
OUT="${RT_OUT:-/var/tmp/fnbox-runtime-tools}"
bin="$OUT/bin"
mkdir -p "$bin"
ln -sf "$FNBOX" "$bin/fnbox-runc-v1"
ln -sf "$FNBOX" "$bin/fnbox-runc-v2"
declare -A runtime=([runc]="$(command -v runc)" [v1]="$bin/fnbox-runc-v1" [v2]="$bin/fnbox-runc-v2")

# One file under one runtime → its result word.
one() {
    local name=$1 file=$2 log=$3 rc
    (cd "$suite" && RUNTIME="${runtime[$name]}" timeout -k 5 "$TIMEOUT" "$file") >"$log" 2>&1 </dev/null
    rc=$?
    local total notok oks skips
    total=$(grep -cE '^(not )?ok ' "$log")
    notok=$(grep -E '^not ok ' "$log" | grep -vc '# TODO')
    oks=$(grep -cE '^ok ' "$log")
    skips=$(grep -cE '^ok .*# (SKIP|skip)' "$log")
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        echo TIMEOUT
    elif [ "$notok" -gt 0 ]; then
        echo "FAIL($notok/$total)"
    elif [ "$rc" != 0 ]; then
        echo ERR
    elif [ "$oks" -gt 0 ] && [ "$oks" = "$skips" ]; then
        echo SKIP
    elif [ "$oks" -gt 0 ]; then
        echo PASS
    else
        echo ERR
    fi
}

cd "$suite"
files=$(find validation -name '*.t' | sort)
[ -n "$pattern" ] && files=$(echo "$files" | grep -E -- "$pattern")
declare -A count
regress=()
printf '%-44s %-12s %-12s %-12s\n' "file" "runc" "fnbox-runc-v1" "fnbox-runc-v2"
for f in $files; do
    short=${f#validation/}
    short=${short%.t}
    declare -A res=()
    for name in runc v1 v2; do
        mkdir -p "$OUT/$name/$(dirname "$short")"
        res[$name]=$(one "$name" "./$f" "$OUT/$name/$short.log")
        word=${res[$name]%%"("*}
        count[$name:$word]=$((${count[$name:$word]:-0} + 1))
    done
    printf '%-44s %-12s %-12s %-12s\n' "$short" "${res[runc]}" "${res[v1]}" "${res[v2]}"
    if [ "${res[runc]}" = PASS ]; then
        for name in v1 v2; do
            [ "${res[$name]}" = PASS ] || regress+=("$short:$name")
        done
    fi
done
echo
for name in runc v1 v2; do
    printf '%-6s PASS %3d  FAIL %3d  SKIP %3d  ERR %3d  TIMEOUT %3d\n' "$name" \
        "${count[$name:PASS]:-0}" "${count[$name:FAIL]:-0}" "${count[$name:SKIP]:-0}" \
        "${count[$name:ERR]:-0}" "${count[$name:TIMEOUT]:-0}"
done
echo "logs: $OUT/{runc,v1,v2}/FILE.log"
if [ ${#regress[@]} -gt 0 ]; then
    echo "passes in runc, not in fnbox: ${regress[*]}"
    exit 1
fi
echo "every file runc passes passes in fnbox-runc-v1 and fnbox-runc-v2"
