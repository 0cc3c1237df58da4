#!/usr/bin/env bash
# Round latency of `qorch simulate` against the number of agents (scenarios/scaling.toml),
# one JSON line per size: agents, clusters, round latencies, efficiency, wall time.
#   scripts/bench-sim-scaling.sh [SIZES]    (default 1000,10000,100000,1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=${1:-1000,10000,100000,1000000}
cargo build --release -q -p qorch-cli
for n in ${sizes//,/ }; do
    k=$(( n / 1000 )); (( k < 4 )) && k=4; (( k > 1000 )) && k=1000
    ./target/release/qorch simulate scenarios/scaling.toml --agents "$n" --clusters "$k" --json \
        | python3 -c '
import json, sys
r = json.load(sys.stdin)
lat = r["round_latency_seconds"]
print(json.dumps({"agents": r["agents"], "clusters": r["clusters"],
    "round_latency_seconds": [round(x, 4) for x in lat],
    "mean_round_latency_seconds": round(sum(lat) / len(lat), 4),
    "allocation_efficiency": round(r["allocation_efficiency"], 4),
    "wall_seconds": round(r["wall_seconds"], 2)}))'
done
