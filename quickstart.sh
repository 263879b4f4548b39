#!/usr/bin/env bash
# Builds fnbox and runs programs in its sandboxes. Must run as root.
set -euo pipefail
cd "$(dirname "$0")"
[ "$(id -u)" = 0 ] || { echo "quickstart.sh: fnbox creates namespaces and cgroups: run as root (sudo ./quickstart.sh)" >&2; exit 1; }
command -v mkfs.ext4 >/dev/null || { apt-get update -qq && apt-get install -y -qq e2fsprogs; }
cargo build --release -q
F=target/release/fnbox
set -x
$F run -- python3 -c 'import platform; print("hello from python", platform.python_version(), "in a v1 sandbox")'
$F run -- node -e 'console.log("hello from node", process.version)'
$F run --memory 128M -- sh -c 'echo "I am $(id -un) on $(hostname), seeing $(ls /proc | grep -c "^[0-9]") processes"'
$F syscalls --sandbox v1 | tail -1
