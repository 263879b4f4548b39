#!/usr/bin/env bash
# CI's short LTP run: conformance/ltp-ci-subset.txt in v1 and v2, failing on a test that passes
# in v1 and not in v2 unless conformance/ltp-v2-expected.tsv lists it.
#   conformance/ci-subset.sh [LTP_DIR]      (or FNBOX_LTP_DIR=...)
# LTP is never committed: without a built tree this says so loudly and exits 0, so a CI machine
# without one still passes; conformance/ltp.sh's header tells how to build one.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
ltp=${1:-${FNBOX_LTP_DIR:-}}
if [ -z "$ltp" ] || [ ! -f "$ltp/runtest/syscalls" ]; then
    echo "########################################################################" >&2
    echo "## ci-subset.sh: NO BUILT LTP TREE (give one as \$1 or FNBOX_LTP_DIR):   ##" >&2
    echo "## the LTP conformance subset DID NOT RUN. See conformance/ltp.sh.     ##" >&2
    echo "########################################################################" >&2
    exit 0
fi
out=$(mktemp -d /var/tmp/fnbox-ltp-ci.XXXXXX)
trap 'rm -rf "$out"' EXIT
for mode in v1 v2; do
    LTP_OUT=$out "$here/ltp.sh" "$ltp" "$mode" --subset "$here/ltp-ci-subset.txt" >/dev/null
done
LTP_OUT=$out "$here/ltp.sh" "$ltp" compare
