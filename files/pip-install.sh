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
# jsonschema's checker of IRIs (rfc3987-syntax, which jupyter-events' extras bring) builds some 35
# parsers whenever it is imported, that is whenever a Jupyter server or JupyterHub starts: 1.5 s
# of a lab's 3 s start on a lab server's core. No Jupyter schema has an IRI to check; jsonschema
# without it leaves IRIs unchecked. Kept where a requirements file asks for it by name.
asked=$(grep -ilE '^[[:space:]]*rfc3987[-_.]syntax' "$@" || true)
for requirements in "$@"; do
    set -- "$@" -r "$requirements"
    shift
done
python3 -m pip install --no-cache-dir ${INDEX_URL:+--index-url "$INDEX_URL"} "$@"
if [ -z "$asked" ]; then
    python3 -m pip uninstall --yes --quiet rfc3987-syntax
fi
