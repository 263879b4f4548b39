#!/usr/bin/env bash
# Runs every test: formatting, lints (clippy also checks that no API newer than the
# workspace's rust-version is used), the API docs, unit tests, and end-to-end tests that
# create real sandboxes (namespaces, cgroups, loop devices). Must run as root.
set -euo pipefail
cd "$(dirname "$0")"
if [ "$(id -u)" != 0 ]; then
  echo "test.sh: the tests create namespaces, cgroups and mounts: run as root (sudo ./test.sh)" >&2
  exit 1
fi
if ! command -v protoc >/dev/null; then
  echo "test.sh: protoc is missing: apt-get install protobuf-compiler (the CRI client of crates/fnbox/tests/cri.rs is generated from the CRI protobuf when the tests build)" >&2
  exit 1
fi
cargo fmt --all -- --check
cargo clippy --release --workspace --all-targets -q -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace -q
cargo test --release --workspace --no-fail-fast "$@"
