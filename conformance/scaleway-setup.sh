#!/bin/sh
# Installs Scaleway's local testing frameworks, the oracle of the differential contract suite
# (crates/fnbox/tests/platform_scaleway.rs), into DIR:
#   DIR/venv  a Python virtual environment with scaleway-functions-python (from PyPI)
#   DIR/node  @scaleway/serverless-functions (from npm)
# Then run the suite with FNBOX_SCALEWAY_REF=DIR (default /opt/scaleway-ref). Nothing of theirs
# is kept in this repository.
#
#   conformance/scaleway-setup.sh /opt/scaleway-ref
set -eu
DIR=${1:?usage: $0 DIR, where to install the frameworks, e.g. /opt/scaleway-ref}
# The versions the suite was written against; newer ones may be tried with PY_VERSION/NODE_VERSION.
PY_VERSION=${PY_VERSION:-0.2.3}
NODE_VERSION=${NODE_VERSION:-1.1.2}
command -v python3 >/dev/null || { echo "$0: python3 is needed" >&2; exit 1; }
command -v npm >/dev/null || { echo "$0: npm is needed (apt-get install npm)" >&2; exit 1; }
mkdir -p "$DIR/node"
python3 -m venv "$DIR/venv" || { echo "$0: python3 -m venv failed: apt-get install python3-venv" >&2; exit 1; }
"$DIR/venv/bin/pip" install --quiet "scaleway-functions-python==$PY_VERSION"
cd "$DIR/node"
[ -f package.json ] || echo '{"name": "scaleway-ref", "private": true}' > package.json
npm install --silent --no-audit --no-fund "@scaleway/serverless-functions@$NODE_VERSION"
echo "Scaleway's frameworks are in $DIR: run the suite with FNBOX_SCALEWAY_REF=$DIR"
