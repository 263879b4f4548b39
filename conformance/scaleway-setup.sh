#!/bin/sh
# Installs Scaleway's local testing frameworks, the oracle of the differential contract suite
# (crates/fnbox/tests/platform_scaleway.rs), and Scaleway's example projects, the test cases of
# `fnbox deploy -f serverless.yml` (crates/fnbox/tests/platform_serverless.rs), into DIR:
#   DIR/venv  a Python virtual environment with scaleway-functions-python (from PyPI)
#   DIR/node  @scaleway/serverless-functions (from npm)
#   DIR/sls-plugin/package/examples  the example projects (python3, nodejs, nodejs-schedule,
#             secrets, multiple, ...) of serverless-scaleway-functions, the Serverless
#             Framework's Scaleway plugin, as its npm package 0.3.2 ships them (the last
#             version that did); unpacked only, never installed or run
# Then run the suite with FNBOX_SCALEWAY_REF=DIR (default /opt/scaleway-ref). Nothing of theirs
# is kept in this repository.
#
#   conformance/scaleway-setup.sh /opt/scaleway-ref
set -eu
DIR=${1:?usage: $0 DIR, where to install the frameworks, e.g. /opt/scaleway-ref}
# The versions the suite was written against; newer ones may be tried with PY_VERSION/NODE_VERSION.
PY_VERSION=${PY_VERSION:-0.2.3}
NODE_VERSION=${NODE_VERSION:-1.1.2}
PLUGIN_VERSION=${PLUGIN_VERSION:-0.3.2}
command -v python3 >/dev/null || { echo "$0: python3 is needed" >&2; exit 1; }
command -v npm >/dev/null || { echo "$0: npm is needed (apt-get install npm)" >&2; exit 1; }
mkdir -p "$DIR/node"
python3 -m venv "$DIR/venv" || { echo "$0: python3 -m venv failed: apt-get install python3-venv" >&2; exit 1; }
"$DIR/venv/bin/pip" install --quiet "scaleway-functions-python==$PY_VERSION"
cd "$DIR/node"
[ -f package.json ] || echo '{"name": "scaleway-ref", "private": true}' > package.json
npm install --silent --no-audit --no-fund "@scaleway/serverless-functions@$NODE_VERSION"
mkdir -p "$DIR/sls-plugin"
cd "$DIR/sls-plugin"
rm -rf package
tgz=$(npm pack --silent "serverless-scaleway-functions@$PLUGIN_VERSION")
tar xzf "$tgz" && rm -f "$tgz"
[ -f package/examples/python3/serverless.yml ] || { echo "$0: serverless-scaleway-functions $PLUGIN_VERSION has no examples" >&2; exit 1; }
echo "Scaleway's frameworks are in $DIR: run the suite with FNBOX_SCALEWAY_REF=$DIR"
