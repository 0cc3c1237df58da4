#!/usr/bin/env bash
# QAOA statevector benchmark: qorch's simulator next to QOKit's C simulator (built by
# scripts/setup-peers.sh) and qulacs (the gate circuit, and the diagonal-phase variant
# "qulacs-diag") on the same random 3-regular graphs and angles, in one run on one machine;
# then the agreement check of the expectations (same graph, same angles, |difference| <=
# 1e-9) against the gate-based qulacs circuit, which shares no code or diagonal with qorch.
# The figures in docs/benchmarks.md come from this script.
#
#   scripts/bench-qaoa.sh [NODES] [P] [REPS]        (defaults: 16,20,22,24  1  3)
#
# Environment: PEERS_VENV=DIR reuses a peer environment (else scripts/setup-peers.sh makes
# one); QORCH_BIN=PATH uses a built binary (else a release build); OUT_DIR=DIR keeps the
# graphs and JSON (else a temporary directory); AGREE_MAX_N (default 20) is the largest n of
# the agreement check with the gate-based circuit (qulacs takes seconds per circuit at 24).
# Run it alone on the machine (e.g. under `flock /tmp/qorch.lock`): it measures time.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
nodes=${1:-16,20,22,24}
ps=${2:-1}
reps=${3:-3}
peers=$root/../shared/peers
[ -f "$peers/qaoa_time.py" ] || { echo "error: peer scripts not found at $peers" >&2; exit 2; }
venv=${PEERS_VENV:-$("$root/scripts/setup-peers.sh")}
py="$venv/bin/python"
qorch=${QORCH_BIN:-$root/target/release/qorch}
if [ -z "${QORCH_BIN:-}" ]; then
    cargo build --release -q -p qorch-cli --manifest-path "$root/Cargo.toml"
fi
out=${OUT_DIR:-$(mktemp -d)}
mkdir -p "$out/graphs"
echo "# output in $out" >&2

# 1. qorch: bandwidth, layers, expectations and gradients; writes the graphs.
"$qorch" qaoa bench --nodes "$nodes" --p "$ps" --reps "$reps" --graph-dir "$out/graphs" \
    --gradient --json > "$out/qorch.json"

# 2. The peers on the same graph files, with the same fixed angles (QOKit's table).
IFS=, read -r -a ns <<< "$nodes"
for n in "${ns[@]}"; do
    g="$out/graphs/rr3_n${n}_s1.txt"
    "$py" "$peers/qaoa_time.py" --graph "$g" --p "$ps" --sims qokit-c,qulacs-diag,qulacs --reps "$reps" \
        --angles fixed > "$out/peers_n$n.json"
done

# 3. Agreement with the gate-based qulacs circuit for explicit angles, and the summary.
QORCH="$qorch" PEERS="$peers" OUT="$out" NODES="$nodes" AGREE_MAX_N="${AGREE_MAX_N:-20}" \
    "$py" - <<'EOF'
import json, os, subprocess, sys
sys.path.insert(0, os.environ["PEERS"])
import numpy as np
from gset_io import read_rudy
from qaoa_time import run_qulacs, run_qulacs_diag, cut_diag

out, qorch = os.environ["OUT"], os.environ["QORCH"]
bench = json.load(open(f"{out}/qorch.json"))
bw = bench["bandwidth"]
print(f"memory bandwidth ({bw['bytes'] >> 20} MiB, {bench['threads']} threads): "
      f"read-write {bw['read_write_gbps']:.1f} GB/s, read {bw['read_gbps']:.1f} GB/s; simd {bench['simd']}")
print()
hdr = ("n", "layer_s", "GB/s", "%bw", "p", "qorch_s", "grad_s", "qokit_s", "qdiag_s", "qulacs_s", "speedup", "cut_frac", "table")
print("%3s %9s %6s %4s %2s %9s %9s %9s %9s %9s %8s %10s %10s" % hdr)
for run in bench["runs"]:
    n = run["n"]
    peers = json.load(open(f"{out}/peers_n{n}.json"))["runs"]
    for e in run["expectations"]:
        t = {r["sim"]: r for r in peers if r.get("p") == e["p"] and "error" not in r}
        qk, qd, ql = t.get("qokit-c", {}), t.get("qulacs-diag", {}), t.get("qulacs", {})
        peers_t = [x["time_per_eval_s"] for x in (qk, qd, ql) if x]
        fastest = min(peers_t) if peers_t else float("nan")
        print("%3d %9.5f %6.2f %3.0f%% %2d %9.5f %9.5f %9.4f %9.4f %9.4f %7.1fx %10.7f %10.7f" % (
            n, run["layer_s"], run["layer_gbps"], 100 * run["bandwidth_fraction"], e["p"],
            e["expectation_s"], e["gradient_s"], qk.get("time_per_eval_s", float("nan")),
            qd.get("time_per_eval_s", float("nan")),
            ql.get("time_per_eval_s", float("nan")), fastest / e["expectation_s"], e["cut_fraction"],
            (qd or qk).get("fixed_angle_AR_table", float("nan"))))
        for name, r in (("qokit-c", qk), ("qulacs-diag", qd), ("qulacs", ql)):
            if r:
                diff = abs(r["expectation"] - e["expectation"])
                print(f"      same fixed angles (QOKit's table, rounded differently): |<C>_qorch - <C>_{name}| = {diff:.1e}")

print()
print("agreement with the gate-based qulacs circuit, explicit angles (the same floats on both sides):")
rng = np.random.default_rng(2024)
angle_sets = [([0.6155336291], [0.3926720292]),
              ([0.4877097327, 0.8979876956], [0.5550603401, 0.2925078148]),
              (list(rng.uniform(-1, 1, 3)), list(rng.uniform(-1, 1, 3)))]
worst = 0.0
for n in [int(x) for x in os.environ["NODES"].split(",")]:
    if n > int(os.environ["AGREE_MAX_N"]):
        continue
    g = f"{out}/graphs/rr3_n{n}_s1.txt"
    nn, edges = read_rudy(g)
    for gammas, betas in angle_sets:
        fmt = lambda v: ",".join(repr(float(x)) for x in v)
        q = json.loads(subprocess.run([qorch, "qaoa", "maxcut", g, "--gammas", fmt(gammas), "--betas", fmt(betas),
                                       "--shots", "1", "--json"], check=True, capture_output=True, text=True).stdout)
        ref = run_qulacs(nn, edges, gammas, betas, 1)["expectation"]
        diff = abs(q["expectation"] - ref)
        worst = max(worst, diff)
        print(f"  n={n:2d} p={len(gammas)}  qorch {q['expectation']:.12f}  qulacs {ref:.12f}  |diff| {diff:.1e}")
print(f"largest |difference|: {worst:.1e} ({'within' if worst <= 1e-9 else 'ABOVE'} 1e-9)")
sys.exit(0 if worst <= 1e-9 else 1)
EOF
