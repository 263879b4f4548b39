#!/usr/bin/env bash
# Start-to-exit time of /bin/true (and python3 -c 'print(1)') in fnbox's sandboxes and in its
# peers, measured side by side in one run, printed as ratios.
#
#   sudo bench/start.sh [RUNS]
#
# Each case is measured twice: back to back (hyperfine's default: a run starts as soon as the
# last one exited, so work a tool leaves running after it exits is paid by the next run), and
# isolated (a 50 ms pause before each run, as for a start on an idle machine). fnbox defers
# work past its exit on purpose (the disk helper unmounts the sandbox's tree and makes the next
# sandbox's writable layer once the launcher is gone), so the two differ for fnbox and barely
# for its peers; both are printed.
#
# Peers: native, bubblewrap (--unshare-all, host /usr read-only) and runc (Debian's runc, a
# bundle whose rootfs is fnbox's generated host image with /usr bind-mounted read-only: the
# same root filesystem fnbox uses). Needs: hyperfine, bwrap, runc (apt-get install hyperfine
# bubblewrap runc).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-100}
FNBOX=${FNBOX:-target/release/fnbox}
[ "$(id -u)" = 0 ] || { echo "bench/start.sh: run as root (sandboxes need namespaces and cgroups)" >&2; exit 1; }
for t in hyperfine bwrap runc python3; do
  command -v $t >/dev/null || { echo "bench/start.sh: $t is missing: apt-get install hyperfine bubblewrap runc" >&2; exit 1; }
done
[ -x "$FNBOX" ] || cargo build --release -q
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

# One fnbox run first: it generates the host image and the disk template.
"$FNBOX" run -- /bin/true

# runc bundle over fnbox's host image.
BUNDLE=$OUT/bundle
mkdir -p "$BUNDLE"
(cd "$BUNDLE" && runc spec)
python3 - "$BUNDLE/config.json" <<'PY'
import json, os, sys
p = sys.argv[1]; c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
c["root"] = {"path": os.path.realpath("/var/lib/fnbox/images/host"), "readonly": True}
c["mounts"].append({"destination": "/usr", "type": "bind", "source": "/usr", "options": ["rbind", "ro", "nosuid", "nodev"]})
c["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]})
c["linux"]["resources"]["memory"] = {"limit": 1 << 30}
json.dump(c, open(p, "w"))
PY
BWRAP="bwrap --unshare-all --unshare-user --die-with-parent --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/sbin /sbin --symlink usr/lib /lib --symlink usr/lib64 /lib64 --proc /proc --dev /dev --tmpfs /tmp"

bench() { # label, then commands as name=cmd pairs
  local label=$1; shift
  local args=()
  for nc in "$@"; do args+=(--command-name "${nc%%=*}" "${nc#*=}"); done
  measure "$label, back to back" "${args[@]}"
  measure "$label, isolated (50 ms pause before each run)" --prepare "sleep 0.05" "${args[@]}"
}

measure() { # label, then hyperfine arguments
  local label=$1; shift
  local slug; slug=$(echo "$label" | tr -c 'a-zA-Z0-9' '_')
  hyperfine -N -w 5 -r "$RUNS" --export-json "$OUT/$slug.json" "$@" >/dev/null 2>&1
  python3 - "$OUT/$slug.json" "$label" <<'PY'
import json, os, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
print(f"\n{sys.argv[2]}")
print(f"{'':12} {'mean ms':>9} {'median':>8} {'p95':>8}")
for name, x in r.items():
    t = sorted(x["times"]); p95 = t[int(len(t) * 0.95) - 1]
    print(f"{name:12} {x['mean']*1e3:9.2f} {x['median']*1e3:8.2f} {p95*1e3:8.2f}")
m = {k: v["median"] for k, v in r.items()}
def ratio(a, b):
    if a in m and b in m: print(f"  {a} / {b} = {m[a]/m[b]:.2f}x (median)")
for s in ("fnbox-v1", "fnbox-v2"):
    for peer in ("runc", "bwrap", "native"):
        ratio(s, peer)
ratio("fnbox-v2", "fnbox-v1")
PY
}

V2=()
if "$FNBOX" run --sandbox v2 -- /bin/true 2>/dev/null; then V2=("fnbox-v2=$FNBOX run --sandbox v2 -- /bin/true"); fi
bench "/bin/true, start to exit" \
  "native=/bin/true" \
  "bwrap=$BWRAP /bin/true" \
  "runc=runc run -b $BUNDLE fnbox-bench" \
  "fnbox-v1=$FNBOX run --sandbox v1 -- /bin/true" \
  "${V2[@]}"

python3 - "$BUNDLE/config.json" <<'PY'
import json, os, sys
p = sys.argv[1]; c = json.load(open(p)); c["process"]["args"] = ["/usr/bin/python3", "-c", "print(1)"]; json.dump(c, open(p, "w"))
PY
V2=()
if [ -n "${V2_OK:-}" ] || "$FNBOX" run --sandbox v2 -- /bin/true 2>/dev/null; then V2=("fnbox-v2=$FNBOX run --sandbox v2 --memory 2G -- python3 -c print(1)"); fi
bench "python3 -c 'print(1)', start to exit (fnbox at --memory 2G: 1.12 vCPU, no CPU throttling)" \
  "native=/usr/bin/python3 -c print(1)" \
  "bwrap=$BWRAP /usr/bin/python3 -c print(1)" \
  "runc=runc run -b $BUNDLE fnbox-bench" \
  "fnbox-v1=$FNBOX run --sandbox v1 --memory 2G -- python3 -c print(1)" \
  "${V2[@]}"
