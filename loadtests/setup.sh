#!/usr/bin/env bash
# Installs what loadtests/run.py needs, only what is missing:
#  - wrk and h2load (Debian packages wrk, nghttp2-client) and taskset (util-linux);
#  - the peers in their own virtualenv loadtests/.peers/ (never the project's .venv):
#    the Rust granian from PyPI, uvicorn[standard] (httptools + uvloop), gunicorn,
#    and psutil for the harness itself.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PEERS="$HERE/.peers"

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v h2load >/dev/null || missing+=(nghttp2-client)
command -v taskset >/dev/null || missing+=(util-linux)
if ((${#missing[@]})); then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "loadtests: installing ${missing[*]} with apt-get" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

PY="${LOADTEST_PYTHON:-python3}"
if [ ! -x "$PEERS/bin/python" ]; then
    echo "loadtests: creating $PEERS" >&2
    "$PY" -m venv "$PEERS"
fi
if ! "$PEERS/bin/python" -c 'import granian, uvicorn, gunicorn, psutil, uvloop, httptools' \
        2>/dev/null; then
    echo "loadtests: installing the peers into $PEERS" >&2
    "$PEERS/bin/pip" install -q --disable-pip-version-check \
        granian 'uvicorn[standard]' gunicorn psutil
fi
