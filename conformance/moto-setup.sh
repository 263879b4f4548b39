#!/bin/sh
# Installs moto's server mode (PyPI's `moto[server]`), the SQS stand-in of the SQS-trigger
# tests (crates/fnbox/tests/platform_sqs.rs), into a Python virtual environment at DIR; the
# tests start DIR/bin/moto_server on a free port (FNBOX_MOTO=DIR/bin/moto_server, default
# /opt/moto/bin/moto_server). No SQS server is packaged for Debian; Scaleway Queues' own
# service is not what these tests talk to. Nothing of moto's is kept in this repository.
#
#   conformance/moto-setup.sh /opt/moto
set -eu
DIR=${1:?usage: $0 DIR, where to install moto, e.g. /opt/moto}
# The version the tests were written against; a newer one may be tried with MOTO_VERSION.
MOTO_VERSION=${MOTO_VERSION:-5.2.6}
command -v python3 >/dev/null || { echo "$0: python3 is needed" >&2; exit 1; }
python3 -m venv "$DIR" || { echo "$0: python3 -m venv failed: apt-get install python3-venv" >&2; exit 1; }
"$DIR/bin/pip" install --quiet "moto[server]==$MOTO_VERSION"
echo "moto's server is $DIR/bin/moto_server: run the SQS tests with FNBOX_MOTO=$DIR/bin/moto_server"
