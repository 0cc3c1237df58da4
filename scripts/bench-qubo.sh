#!/usr/bin/env bash
# Side-by-side QUBO benchmarks on G-set Max-Cut graphs: qorch against D-Wave's samplers
# (dwave-samplers, C++), in one run on one machine. Prints one JSON line per measurement and
# a summary table; the figures in docs/benchmarks.md come from this script.
#
#   scripts/bench-qubo.sh [GRAPH_DIR] [TIME_LIMIT]
#
# GRAPH_DIR defaults to ../shared/data/gset; TIME_LIMIT (seconds, default 10) is the budget of
# the default-solver quality run. Needs the peer environment (scripts/setup-peers.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
gsets=${1:-$root/../shared/data/gset}
limit=${2:-10}
peers=$root/../shared/peers
[ -d "$peers" ] || { echo "error: peer scripts not found at $peers" >&2; exit 2; }
venv=$("$root/scripts/setup-peers.sh")
py="$venv/bin/python"
qorch=${QORCH_BIN:-$root/target/release/qorch}
if [ -z "${QORCH_BIN:-}" ]; then
    cargo build --release -q -p qorch-cli --manifest-path "$root/Cargo.toml"
fi

field() { "$py" -c "import json,sys; print(json.loads(sys.stdin.read())['$1'])"; }

printf '%-6s %6s | %9s %9s %6s | %9s %9s | %8s %8s | %8s %7s\n' \
    graph n "dw_s/10x1k" "q_s/10x1k" speed "dw_cut" "q_cut@=t" "q_cut10" "best" ratio best?
for g in "$gsets"/G*.txt; do
    name=$(basename "$g" .txt)
    best=$(grep -E "^\| *$name +\|" "$gsets/BEST.md" | awk -F'|' '{gsub(/ /,"",$5); print $5}')
    # 1. Same reads and sweeps: 10 reads x 1000 sweeps each, D-Wave's default schedule length.
    dw=$("$py" "$peers/sa_gset.py" "$g" --num-reads 10 --num-sweeps 1000 --seed 1)
    dw_t=$(echo "$dw" | field time_s)
    dw_cut=$(echo "$dw" | field best_cut)
    q=$("$qorch" qubo solve "$g" --solver sa --reads 10 --sweeps-per-read 1000 --seed 1 --json)
    q_t=$(echo "$q" | field seconds)
    # 2. Equal wall time: our annealer gets D-Wave's time.
    qe=$("$qorch" qubo solve "$g" --solver sa --time-limit "$dw_t" --seed 1 --json)
    qe_cut=$(echo "$qe" | field cut)
    # 3. The default solver with the issue's budget.
    qd=$("$qorch" qubo solve "$g" --time-limit "$limit" --seed 1 --json)
    qd_cut=$(echo "$qd" | field cut)
    echo "{\"graph\":\"$name\",\"dwave_sa\":$dw,\"qorch_sa_same_sweeps\":$q,\"qorch_sa_same_time\":$qe,\"qorch_default\":$qd}" >> "${BENCH_JSON:-/dev/null}"
    speed=$("$py" -c "print(f'{$dw_t/$q_t:.2f}x')")
    ratio=$("$py" -c "print(f'{$qd_cut/${best:-0}:.5f}' if '${best}' else '-')")
    n=$(head -1 "$g" | awk '{print $1}')
    printf '%-6s %6s | %9s %9.4f %6s | %9s %9s | %8s %8s | %8s\n' \
        "$name" "$n" "$dw_t" "$q_t" "$speed" "$dw_cut" "$qe_cut" "$qd_cut" "${best:--}" "$ratio"
done
