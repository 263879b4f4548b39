#!/usr/bin/env bash
# The Linux Test Project's syscall suite (testcases/kernel/syscalls) natively, in runc, in v1
# and in v2, one sandbox per test, with a three-way comparison (issue 14).
#
#   conformance/ltp.sh LTP_DIR [native|v1|v2|runc|all|compare] [--subset FILE] [--out DIR]
#
# LTP_DIR is a BUILT LTP tree. LTP is GPL test code: it is never committed here. To build one
# (about 20 minutes on 2 cores), outside any repository:
#   apt-get install autoconf automake libtool pkg-config libaio-dev libnuma-dev libcap-dev \
#     libacl1-dev libselinux1-dev libkeyutils-dev bison flex
#   git clone https://github.com/linux-test-project/ltp LTP_DIR && cd LTP_DIR
#   make autotools && ./configure && make -C lib && make -C libs \
#     && make -k -C testcases/kernel/syscalls -j2
#
# The tests are the entries of LTP_DIR/runtest/syscalls (tag, program, arguments) whose program
# was built under testcases/kernel/syscalls: the whole directory, not a sample. Each runs in a
# sandbox of its own with LTPROOT=/ltp (LTP_DIR bound read-only), TMPDIR=/var/tmp (v2 keeps /tmp in
# memory; LTP skips some tests on tmpfs: the suite is to compare syscalls), its directory as
# the working directory and on PATH, and a per-test timeout. One line per test:
#   TAG RESULT EXIT SECONDS      RESULT: PASS FAIL BROK CONF TIMEOUT (from LTP's exit bits)
# in OUT/MODE/results.tsv (logs in OUT/MODE/logs/), then a summary of every mode run so far in
# OUT. The run fails when a test that passes in v1 does not pass in v2 and is not listed in
# conformance/ltp-v2-expected.tsv (test, reason: a syscall v2 documents as unsupported), and
# when a test that passes in runc does not pass in v1 and is not listed in
# conformance/ltp-v1-expected.tsv (test, reason: where v1 deliberately refuses what Docker allows).
#
# Environment: LTP_JOBS (parallel tests, default 2), LTP_TEST_TIMEOUT (seconds, default 150),
# LTP_SUBSET (a file of tags, like --subset), LTP_DOCKER_SECCOMP (runc mode, below), FNBOX (the
# fnbox binary; default: the one cargo built next to this script), LTP_OUT (default
# /var/tmp/fnbox-ltp).
# runc mode: Debian's runc, `runc spec` defaults with Docker's default capabilities, Docker's
# default seccomp profile and the same root as fnbox's host image (/usr read-only, a writable root
# with /tmp). The profile is moby's profiles/seccomp/default.json (Apache-2.0, never committed):
# LTP_DOCKER_SECCOMP names it (default /var/tmp/moby-seccomp-default.json); runc mode refuses to
# run without it. Get it with e.g.
#   curl -o /var/tmp/moby-seccomp-default.json \
#     https://raw.githubusercontent.com/moby/profiles/main/seccomp/default.json
# conformance/docker-seccomp.py turns it into config.json's linux.seccomp as dockerd does.
# native mode runs tests as the host's root: unshare03, which sets the host's fs.nr_open to 64
# (so that no process with 64+ descriptors can fork meanwhile), is not run natively (CONF).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
expected="$here/ltp-v2-expected.tsv"
expected_v1="$here/ltp-v1-expected.tsv"

usage() {
    sed -n '2,40p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# ---- one test (called by xargs as `ltp.sh __line MODE LINE`) -----------------------------------

classify() { # exit code, timed out (0/1) -> result
    local rc=$1 timed=$2
    if [ "$timed" = 1 ]; then echo TIMEOUT
    elif [ "$rc" = 0 ]; then echo PASS
    elif [ "$rc" = 32 ]; then echo CONF
    elif [ "$rc" -ge 126 ]; then echo BROK # not runnable, or killed by a signal
    elif [ $((rc & 2)) != 0 ]; then echo BROK
    elif [ $((rc & 5)) != 0 ]; then echo FAIL # TFAIL or TWARN
    elif [ $((rc & 32)) != 0 ]; then echo CONF
    else echo BROK
    fi
}

run_runc() { # bundle dir, tag, workdir, program args...
    local bundle=$1 tag=$2 wd=$3
    shift 3
    rm -rf "$bundle"
    mkdir -p "$bundle/image"/{usr,ltp,tmp,etc,proc,dev,sys,root,var/tmp,run} "$bundle"/{rootfs,upper,work}
    chmod 1777 "$bundle/image/tmp" "$bundle/image/var/tmp"
    for l in bin lib lib64 sbin; do ln -s "usr/$l" "$bundle/image/$l"; done
    for f in passwd group hosts nsswitch.conf ld.so.cache ld.so.conf ld.so.conf.d resolv.conf localtime; do
        [ -e "/etc/$f" ] && cp -a "/etc/$f" "$bundle/image/etc/"
    done
    # The root is an overlay over the image, as Docker's overlay2 makes it (and as v1's is):
    # file handles, rename and copy-up behave as in a Docker container.
    mount -t overlay overlay -o "lowerdir=$bundle/image,upperdir=$bundle/upper,workdir=$bundle/work" "$bundle/rootfs"
    python3 - "$OUT/runc/template.json" "$bundle/config.json" "$wd" "$tag" "$@" <<'PY'
import json, sys
tpl, out, wd, tag, *argv = sys.argv[1:]
c = json.load(open(tpl))
c["process"]["args"] = argv
c["process"]["cwd"] = wd
c["hostname"] = "ltp-" + tag[:40]
json.dump(c, open(out, "w"))
PY
    local name="fnbox-ltp-$tag-$$"
    timeout -k 10 "$TIMEOUT" runc --root "$OUT/runc/state" run --bundle "$bundle" "$name" </dev/null
}

one() {
    local mode=$1 tag=$2 prog=$3
    shift 3
    local dir="$PROGDIR_REL/${prog%/*}" bin=${prog##*/}
    local log="$OUT/$mode/logs/$tag.log" start end rc timed=0
    local envs=(LTPROOT=/ltp TMPDIR=/var/tmp LTP_RUNTIME_MUL=0.1 LTP_COLORIZE_OUTPUT=0
        "PATH=/ltp/$dir:/ltp/testcases/lib:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    start=$(date +%s)
    set +e
    case $mode in
        native)
            if [ "$tag" = unshare03 ]; then
                # It sets fs.nr_open to 64, host-wide: meanwhile every process of the host with
                # 64 or more descriptors fails to fork (this runner's xargs died of it).
                echo "ltp.sh: not run natively: it sets the host's fs.nr_open to 64" >"$log"
                printf '%s\tCONF\t32\t0\n' "$tag"
                return
            fi
            local tmp
            tmp=$(mktemp -d "$OUT/native/tmp/$tag.XXXX")
            (cd "$LTP_DIR/$dir" && env LTPROOT="$LTP_DIR" TMPDIR="$tmp" LTP_RUNTIME_MUL=0.1 LTP_COLORIZE_OUTPUT=0 \
                PATH="$LTP_DIR/$dir:$LTP_DIR/testcases/lib:$PATH" timeout -k 10 "$TIMEOUT" "./$bin" "$@") \
                </dev/null >"$log" 2>&1
            rc=$?
            rm -rf "$tmp"
            ;;
        v1 | v2)
            # 2G brings a CPU share of 1.12, shown as 2 CPUs: tests that need two run. runc's
            # writable layer is the host's disk; LTP wants up to 5G free (sendfile09).
            local args=(run --sandbox "$mode" --cgroup-parent "$CGROUP_PARENT" --timeout "$TIMEOUT"
                --memory 2G --pids 4096 --disk 6G --bind "$LTP_DIR:/ltp:ro" --workdir "/ltp/$dir")
            for e in "${envs[@]}"; do args+=(--env "$e"); done
            "$FNBOX" "${args[@]}" -- "/ltp/$dir/$bin" "$@" </dev/null >"$log" 2>&1
            rc=$?
            grep -q "^fnbox: killed: timeout" "$log" && timed=1
            ;;
        runc)
            # A shell as pid 1 (like `docker run --init`): LTP takes a parent pid of 1 for
            # "the main test process has exited".
            run_runc "$OUT/runc/bundles/$tag" "$tag" "/ltp/$dir" /bin/sh -c '"$@"; exit $?' sh "/ltp/$dir/$bin" "$@" \
                >"$log" 2>&1
            rc=$?
            grep -q "runc run failed" "$log" && rc=127 # the container never started
            runc --root "$OUT/runc/state" delete -f "fnbox-ltp-$tag-$$" >/dev/null 2>&1
            umount -l "$OUT/runc/bundles/$tag/rootfs" 2>/dev/null
            rm -rf "$OUT/runc/bundles/$tag"
            ;;
    esac
    set -e
    [ "$mode" != v1 ] && [ "$mode" != v2 ] && { [ "$rc" = 124 ] || [ "$rc" = 137 ]; } && timed=1
    end=$(date +%s)
    # A hostile or broken test may print without bound: keep the log's first 256 KiB.
    if [ "$(stat -c %s "$log")" -gt 262144 ]; then
        head -c 262144 "$log" >"$log.cut" && mv "$log.cut" "$log"
    fi
    printf '%s\t%s\t%s\t%s\n' "$tag" "$(classify "$rc" "$timed")" "$rc" "$((end - start))"
}

if [ "${1:-}" = __line ]; then # MODE "TAG<TAB>PROGRAM<TAB>ARGS"
    IFS=$'\t' read -r tag prog args <<<"$3"
    # shellcheck disable=SC2086 # the runtest arguments are words
    one "$2" "$tag" "$prog" $args
    exit 0
fi

# ---- arguments --------------------------------------------------------------------------------

[ $# -ge 1 ] || {
    echo "ltp.sh: no LTP tree given: pass a BUILT LTP source tree (how to build one below)" >&2
    usage
}
LTP_DIR=$(realpath -m "$1")
shift
MODE=v2
SUBSET=${LTP_SUBSET:-}
OUT=${LTP_OUT:-/var/tmp/fnbox-ltp}
while [ $# -gt 0 ]; do
    case $1 in
        native | v1 | v2 | runc | all | compare) MODE=$1 ;;
        --subset) SUBSET=$2; shift ;;
        --out) OUT=$2; shift ;;
        -h | --help) usage ;;
        *) echo "ltp.sh: unknown argument '$1'" >&2; usage ;;
    esac
    shift
done
PROGDIR_REL=testcases/kernel/syscalls
if [ ! -f "$LTP_DIR/runtest/syscalls" ] || [ ! -d "$LTP_DIR/$PROGDIR_REL" ]; then
    echo "ltp.sh: $LTP_DIR is not an LTP tree (no runtest/syscalls or $PROGDIR_REL): give a built one" >&2
    usage
fi
if [ -z "$(find "$LTP_DIR/$PROGDIR_REL" -name 'access01' -type f -perm -u+x -print -quit)" ]; then
    echo "ltp.sh: $LTP_DIR has no built syscall tests (no access01): build it first (see below)" >&2
    usage
fi
[ "$(id -u)" = 0 ] || { echo "ltp.sh: run as root (sandboxes and the native tests need it)" >&2; exit 2; }
[ -z "$SUBSET" ] || [ -f "$SUBSET" ] || { echo "ltp.sh: subset file $SUBSET does not exist" >&2; exit 2; }
export LTP_DIR OUT PROGDIR_REL
export TIMEOUT=${LTP_TEST_TIMEOUT:-150}
DOCKER_SECCOMP=${LTP_DOCKER_SECCOMP:-/var/tmp/moby-seccomp-default.json}
export CGROUP_PARENT="fnbox-ltp-$$"
if [ -z "${FNBOX:-}" ]; then
    FNBOX="${CARGO_TARGET_DIR:-$repo/target}/release/fnbox"
fi
export FNBOX
JOBS=${LTP_JOBS:-2}

# ---- the test list ------------------------------------------------------------------------------

# tag<TAB>program path relative to the syscalls directory<TAB>arguments, for built programs.
list_tests() {
    local index
    index=$(cd "$LTP_DIR/$PROGDIR_REL" && find . -type f -perm -u+x ! -name '*.[cho]' ! -name '*.sh' \
        ! -name 'Makefile*' | sed 's|^\./||')
    awk -v subset="$SUBSET" -v index_list="$index" '
        BEGIN {
            n = split(index_list, files, "\n")
            for (i = 1; i <= n; i++) { b = files[i]; sub(/.*\//, "", b); if (!(b in prog)) prog[b] = files[i] }
            if (subset != "") {
                while ((getline line < subset) > 0) { sub(/#.*/, "", line); gsub(/[ \t]/, "", line); if (line != "") want[line] = 1 }
            }
        }
        /^[ \t]*#/ || NF < 2 { next }
        {
            if (subset != "" && !($1 in want)) next
            if (!($2 in prog)) { print $1 "\t-\t" > "/dev/stderr"; next }
            args = ""; for (i = 3; i <= NF; i++) args = args " " $i
            print $1 "\t" prog[$2] "\t" args
        }' "$LTP_DIR/runtest/syscalls"
}

prepare_runc() {
    command -v runc >/dev/null || { echo "ltp.sh: runc mode needs runc: apt-get install runc" >&2; exit 2; }
    mkdir -p "$OUT/runc/state" "$OUT/runc/bundles"
    if [ ! -f "$DOCKER_SECCOMP" ]; then
        echo "ltp.sh: runc mode needs Docker's default seccomp profile at $DOCKER_SECCOMP (LTP_DOCKER_SECCOMP):" >&2
        echo "  moby's profiles/seccomp/default.json; see this script's header. runc NOT run." >&2
        exit 2
    fi
    (cd "$OUT/runc" && rm -f config.json && runc spec)
    python3 - "$OUT/runc/config.json" "$OUT/runc/template.json" "$LTP_DIR" "$(ulimit -Hn)" "$here/docker-seccomp.py" \
        "$DOCKER_SECCOMP" <<'PY'
import json, subprocess, sys
spec, out, ltp, nofile, convert, profile = sys.argv[1:]
c = json.load(open(spec))
# Docker's default capabilities (moby's oci/caps/defaults.go).
caps = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
        "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
        "CAP_AUDIT_WRITE"]
p = c["process"]
p["terminal"] = False
p["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
p["env"] = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LTPROOT=/ltp", "TMPDIR=/var/tmp",
            "LTP_RUNTIME_MUL=0.1", "LTP_COLORIZE_OUTPUT=0", "HOME=/root"]
# Docker's daemon passes its own open-files limit on.
p["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": int(nofile), "soft": int(nofile)}]
c["root"] = {"path": "rootfs", "readonly": False}
c["mounts"] += [
    {"destination": "/usr", "type": "bind", "source": "/usr", "options": ["rbind", "ro", "nosuid", "nodev"]},
    {"destination": "/ltp", "type": "bind", "source": ltp, "options": ["rbind", "ro"]},
]
caps_file = out + ".caps"
json.dump(caps, open(caps_file, "w"))
c["linux"]["seccomp"] = json.loads(subprocess.run([sys.executable, convert, profile, caps_file], check=True,
                                                  stdout=subprocess.PIPE).stdout)
json.dump(c, open(out, "w"), indent=1)
PY
}

foreign_loops() {
    losetup -a 2>/dev/null | grep -vc '/var/lib/fnbox/' || true
}

run_mode() {
    local mode=$1 list
    mkdir -p "$OUT/$mode/logs" "$OUT/$mode/tmp"
    [ "$mode" = runc ] && prepare_runc
    if [ "$mode" = v1 ] || [ "$mode" = v2 ]; then
        [ -x "$FNBOX" ] || { echo "ltp.sh: no fnbox binary at $FNBOX: cargo build --release (or set FNBOX)" >&2; exit 2; }
    fi
    list=$(list_tests 2>"$OUT/$mode/not-built.tsv")
    local n
    n=$(printf '%s\n' "$list" | grep -c . || true)
    echo "ltp.sh: $mode: $n tests ($(wc -l <"$OUT/$mode/not-built.tsv") runtest entries not built), $JOBS at a time, ${TIMEOUT}s each" >&2
    : >"$OUT/$mode/results.tsv"
    local loops_before
    loops_before=$(foreign_loops)
    printf '%s\n' "$list" | grep . | xargs -d '\n' -n 1 -P "$JOBS" bash "$0" __line "$mode" \
        | tee -a "$OUT/$mode/results.tsv"
    # What a run must never leave behind: a sandbox cgroup under this run's parent, a loop
    # device that is not one of fnbox's own (its spare layers live in /var/lib/fnbox).
    local cgroups
    cgroups=$(find /sys/fs/cgroup -mindepth 2 -maxdepth 5 -type d -path "*/$CGROUP_PARENT/*" 2>/dev/null | wc -l)
    echo "ltp.sh: $mode: sandbox cgroups left: $cgroups; loop devices not fnbox's, before/after: $loops_before/$(foreign_loops)" \
        | tee "$OUT/$mode/leaks.txt" >&2
    find /sys/fs/cgroup -maxdepth 3 -depth -type d -name "$CGROUP_PARENT" -exec rmdir {} + 2>/dev/null || true
}

# ---- the summary ------------------------------------------------------------------------------

summary() {
    python3 - "$OUT" "$expected" "$expected_v1" <<'PY'
import os, sys
out, expected, expected_v1 = sys.argv[1:]
res = {}
for m in ("native", "runc", "v1", "v2"):
    f = os.path.join(out, m, "results.tsv")
    if os.path.exists(f) and os.path.getsize(f) > 0:
        res[m] = {}
        for line in open(f):
            p = line.rstrip("\n").split("\t")
            if len(p) >= 2:
                res[m][p[0]] = p[1]
def load(path):  # test<TAB>reason, # comments
    exp = {}
    for line in open(path):
        if line.strip() and not line.startswith("#"):
            t, _, why = line.rstrip("\n").partition("\t")
            exp[t.strip()] = why.strip()
    return exp
exp, exp_v1 = load(expected), load(expected_v1)
kinds = ["PASS", "FAIL", "BROK", "CONF", "TIMEOUT"]
print("LTP syscalls summary (%s)" % out)
print("%-7s %6s " % ("mode", "tests") + " ".join("%7s" % k for k in kinds))
for m, r in res.items():
    print("%-7s %6d " % (m, len(r)) + " ".join("%7d" % sum(1 for v in r.values() if v == k) for k in kinds))
passed = {m: {t for t, v in r.items() if v == "PASS"} for m, r in res.items()}
bad = False
def gap(a, b, allowed=None, gated=True):
    common = set(res[a]) & set(res[b])
    pa = passed[a] & common
    miss = sorted(t for t in pa if t not in passed[b])
    both = len(pa) - len(miss)
    pct = 100.0 * both / len(pa) if pa else 100.0
    print("%s passes %d of the %d tests %s passes (%.1f%%)" % (b, both, len(pa), a, pct))
    unlisted = [t for t in miss if allowed is None or t not in allowed]
    for t in miss:
        if allowed is not None and t in allowed:
            tag = "expected: " + allowed[t]
        else:
            tag = "NOT EXPECTED" if gated else ""
        print("  %s-only pass: %-24s %s %s" % (a, t, res[b][t], tag))
    return unlisted
if "native" in res and "runc" in res:
    gap("native", "runc", gated=False)  # the host is not the bar: a container refuses more
def stale(listed, mode, path):
    for t in sorted(t for t in listed if t in passed.get(mode, set())):
        print("  listed in %s but passes in %s: %s" % (os.path.basename(path), mode, t))
if "runc" in res and "v1" in res:
    if gap("runc", "v1", exp_v1):
        bad = True
    stale(exp_v1, "v1", expected_v1)
if "v1" in res and "v2" in res:
    if gap("v1", "v2", exp):
        bad = True
    stale(exp, "v2", expected)
print("RESULT: %s" % ("FAIL (unexpected differences above)" if bad else "ok"))
sys.exit(1 if bad else 0)
PY
}

case $MODE in
    compare) ;;
    all) for m in native runc v1 v2; do run_mode "$m"; done ;;
    *) run_mode "$MODE" ;;
esac
summary
