#!/usr/bin/env bash
# One command for the side-by-side load tests: installs what is missing
# (setup.sh), then runs run.py with the peers' Python. All options go to run.py;
# see `bash loadtests/run.sh --help` and loadtests/README.md.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$HERE/setup.sh"
exec "$HERE/.peers/bin/python" "$HERE/run.py" "$@"
