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

# QOKit's C simulator: PyPI ships its C sources without the three headers (which only declare
# the functions the sources define) and without the compiled library, so qaoa_time.py's
# `qokit-c` would fail. Declare the functions from the sources' own definitions and build the
# library with -O3 -march=native and OpenMP, as QOKit's README builds it (plus -march).
csim=$("$venv/bin/python" -c "import qokit, os; print(os.path.join(os.path.dirname(qokit.__file__), 'fur', 'c', 'csim'))")
if [ ! -f "$csim/libcsim.so" ] && command -v gcc >/dev/null 2>&1; then
    inc=$(mktemp -d)
    "$venv/bin/python" - "$csim/src" "$inc" <<'PY'
import pathlib, re, sys
src, inc = map(pathlib.Path, sys.argv[1:])
decls = [m.group(1) + ";" for f in sorted(src.glob("*.c"))
         for m in re.finditer(r"^(void\s+\w+\s*\([^)]*\))\s*\{", f.read_text(), re.M)]
for h in ("fur.h", "diagonal.h", "qaoa_fur.h"):
    (inc / h).write_text("#pragma once\n#include <stddef.h>\n" + "\n".join(decls) + "\n")
PY
    gcc -O3 -march=native -fopenmp -fPIC -shared -I"$inc" "$csim"/src/*.c -o "$csim/libcsim.so" -lm
    rm -rf "$inc"
fi
echo "$venv"
