#!/bin/sh
# The pip install step of every image labhub builds (files/hub, files/lab and admins' own lab
# folders), copied into each build context as labhub-build/pip-install.sh:
#
#   RUN sh /tmp/labhub-build/pip-install.sh /tmp/labhub-build/requirements.txt
#
# ca.crt beside it is the build_ca_bundle setting (empty when unset): labs behind a TLS-inspecting
# proxy need pip to trust the proxy's CA. INDEX_URL (a build argument) is the pip_index_url
# setting; empty means PyPI.
set -eu
here=$(dirname "$0")
if [ -s "$here/ca.crt" ]; then
    export PIP_CERT="$here/ca.crt"
fi
for requirements in "$@"; do
    set -- "$@" -r "$requirements"
    shift
done
exec python3 -m pip install --no-cache-dir ${INDEX_URL:+--index-url "$INDEX_URL"} "$@"
