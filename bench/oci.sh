#!/usr/bin/env bash
# End-to-end container start through containerd: `ctr run --rm IMAGE ID /bin/true` with the
# runc v2 shim driving fnbox-runc-v1, fnbox-runc-v2 and runc, measured side by side in one run
# under one containerd, printed with ratios to runc.
#
#   sudo bench/oci.sh [RUNS]
#
# Starts its own containerd (own root, state and socket; CRI off) and imports a busybox image it
# builds itself (no registry). Needs: containerd, runc, hyperfine, busybox (apt-get install
# containerd runc hyperfine busybox). Target: fnbox-runc-v2 at most 0.7x runc.
#
# Most of each run is containerd's, whatever the runtime: ctr, the shim's start, the snapshot,
# events. In one measurement here (2 vCPUs, containerd 1.6.20, runc 1.1.5, verbs timed by a
# wrapper), runc's four verbs (create, start, delete, delete --force) took 44 ms of a 161 ms run
# and fnbox-runc-v2's 21 ms of 140 ms: the shared rest bounds how far below 1x any runtime goes.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-30}
FNBOX=$(realpath "${FNBOX:-target/release/fnbox}")
[ "$(id -u)" = 0 ] || { echo "bench/oci.sh: run as root (containers need namespaces and cgroups)" >&2; exit 1; }
for t in containerd ctr runc hyperfine busybox python3; do
  command -v $t >/dev/null || { echo "bench/oci.sh: $t is missing: apt-get install containerd runc hyperfine busybox" >&2; exit 1; }
done
[ -x "$FNBOX" ] || cargo build --release -q
D=$(mktemp -d /tmp/fnbox-oci-bench.XXXXXX)
SOCK=$D/containerd.sock
CTR=(ctr -a "$SOCK" -n fnbox-oci-bench)
cleanup() {
  [ -n "${CTD:-}" ] && kill "$CTD" 2>/dev/null && wait "$CTD" 2>/dev/null
  grep -o " $D/[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$D"
  rmdir /sys/fs/cgroup/fnbox-oci-bench /sys/fs/cgroup/*/fnbox-oci-bench 2>/dev/null || true # ctr's namespace parent
}
trap cleanup EXIT

cat >"$D/config.toml" <<EOF
version = 2
root = "$D/root"
state = "$D/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
EOF
containerd --config "$D/config.toml" >"$D/containerd.log" 2>&1 &
CTD=$!
for _ in $(seq 200); do "${CTR[@]}" version >/dev/null 2>&1 && break; sleep 0.05; done
"${CTR[@]}" version >/dev/null || { cat "$D/containerd.log" >&2; exit 1; }

# The image: busybox (all applets) and the libraries it links, one layer.
R=$D/rootfs
mkdir -p "$R/bin" "$R/proc" "$R/sys" "$R/dev" "$R/tmp" "$R/etc" "$D/oci/blobs/sha256"
cp /usr/bin/busybox "$R/bin/"
for a in $(busybox --list); do ln -sf busybox "$R/bin/$a"; done
for l in $(ldd /usr/bin/busybox | grep -o '/[^ ]*'); do mkdir -p "$R$(dirname "$l")"; cp -L "$l" "$R$l"; done
tar -C "$R" -cf "$D/layer.tar" .
python3 - "$D" <<'PY'
import hashlib, json, os, sys
d = sys.argv[1]; blobs = f"{d}/oci/blobs/sha256"
def put(data):
    h = hashlib.sha256(data).hexdigest()
    open(f"{blobs}/{h}", "wb").write(data)
    return {"digest": f"sha256:{h}", "size": len(data)}
layer = put(open(f"{d}/layer.tar", "rb").read())
config = put(json.dumps({"architecture": "amd64", "os": "linux", "config": {"Env": ["PATH=/bin"]},
                         "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}}).encode())
manifest = put(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer}]}).encode())
index = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", **manifest,
         "annotations": {"io.containerd.image.name": "fnbox.bench/busybox:latest"},
         "platform": {"architecture": "amd64", "os": "linux"}}]}
json.dump(index, open(f"{d}/oci/index.json", "w"))
open(f"{d}/oci/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
PY
tar -C "$D/oci" -cf "$D/image.tar" .
"${CTR[@]}" image import "$D/image.tar" >/dev/null
ln -s "$FNBOX" "$D/fnbox-runc-v1"
ln -s "$FNBOX" "$D/fnbox-runc-v2"

run() { # runtime binary → the ctr command line
  echo "${CTR[*]} run --rm --runtime io.containerd.runc.v2 --runc-binary $1 --runc-root $D/runc fnbox.bench/busybox:latest bench /bin/true"
}
for b in "$(command -v runc)" "$D/fnbox-runc-v1" "$D/fnbox-runc-v2"; do
  $(run "$b") || { echo "bench/oci.sh: /bin/true through $b failed" >&2; exit 1; }
done
hyperfine -N -w 3 -r "$RUNS" --export-json "$D/r.json" \
  --command-name runc "$(run "$(command -v runc)")" \
  --command-name fnbox-runc-v1 "$(run "$D/fnbox-runc-v1")" \
  --command-name fnbox-runc-v2 "$(run "$D/fnbox-runc-v2")" >/dev/null
python3 - "$D/r.json" "$RUNS" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
print(f"ctr run --rm of /bin/true through containerd 1.6's runc v2 shim, {sys.argv[2]} runs each")
print(f"{'':14} {'mean ms':>8} {'median':>8} {'p95':>8} {'vs runc':>8}")
base = r["runc"]["median"]
for name, x in r.items():
    t = sorted(x["times"]); p95 = t[max(0, int(len(t) * 0.95) - 1)]
    print(f"{name:14} {x['mean']*1e3:8.1f} {x['median']*1e3:8.1f} {p95*1e3:8.1f} {x['median']/base:7.2f}x")
PY
