#!/usr/bin/env bash
# Builds fnbox and runs programs in its sandboxes. Must run as root.
set -euo pipefail
cd "$(dirname "$0")"
[ "$(id -u)" = 0 ] || { echo "quickstart.sh: fnbox creates namespaces and cgroups: run as root (sudo ./quickstart.sh)" >&2; exit 1; }
# What fnbox runs on the host (mkfs.ext4, nft, ip): installed when missing.
. ./host-commands.sh
fnbox_install_host_commands
cargo build --release -q
F=${CARGO_TARGET_DIR:-target}/release/fnbox
set -x
$F run -- python3 -c 'import platform; print("hello from python", platform.python_version(), "in a v2 sandbox (the default)")'
$F run --sandbox v1 -- node -e 'console.log("hello from node", process.version, "in a v1 sandbox")'
$F run --memory 128M -- sh -c 'echo "I am $(id -un) on $(hostname), seeing $(ls /proc | grep -c "^[0-9]") processes"'
$F syscalls --sandbox v1 | tail -1
set +x

# The function platform: a server in the background, the Python hello example deployed, one curl.
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl; }
DATA=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export FNBOX_SERVER="http://127.0.0.1:$PORT" FNBOX_DATA_DIR="$DATA"
$F serve --listen "127.0.0.1:$PORT" --data-dir "$DATA" &
SERVE=$!
trap 'kill $SERVE 2>/dev/null || true; wait $SERVE 2>/dev/null || true; rm -rf "$DATA"' EXIT
for _ in $(seq 100); do curl -sf "$FNBOX_SERVER/healthz" >/dev/null && break; sleep 0.1; done
set -x
$F deploy hello examples/hello-python --runtime python3
curl -s "$FNBOX_SERVER/fn/hello/?name=quickstart"
$F ls
set +x
kill $SERVE
wait $SERVE || true
