#!/usr/bin/env bash
# Installs the established tools qorch's benchmarks compare against (D-Wave's samplers, qulacs,
# QOKit, HiGHS, networkx) into a Python virtual environment, and prints its path.
#
#   scripts/setup-peers.sh [VENV_DIR]      (default: .venv-peers in the repository root)
#
# The peer scripts themselves live in ../shared/peers (next to the repository); they are run
# by scripts/bench-*.sh with this environment's python.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${1:-$root/.venv-peers}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip >/dev/null
"$venv/bin/python" -m pip install -q dwave-samplers qulacs qokit networkx numpy highspy
"$venv/bin/python" -c "import dimod, qulacs, networkx, highspy" >&2
echo "$venv"
