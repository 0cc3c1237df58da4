#!/usr/bin/env bash
# Runs the property-test fuzzers of the readers (rudy, QUBO text, QUBO JSON, GAP, scenario
# TOML) for about MINUTES minutes in all, with fresh random seeds each batch, and prints how
# many cases ran. A failing case stops the run; proptest prints it and records it in the
# test's `.proptest-regressions` file.
#
#   scripts/fuzz.sh MINUTES [CASES_PER_BATCH]
set -euo pipefail
minutes=${1:?usage: scripts/fuzz.sh MINUTES [CASES_PER_BATCH]}
batch=${2:-5000}
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
targets=(
    "qorch-qubo fuzz_readers 6"
    "qorch-scheduler fuzz_gap 2"
    "qorch-sim fuzz_scenario 2"
)
for t in "${targets[@]}"; do
    read -r crate test _ <<<"$t"
    nice -n 19 cargo test --release -q -p "$crate" --test "$test" --no-run
done
deadline=$(($(date +%s) + minutes * 60))
total=0
while (($(date +%s) < deadline)); do
    for t in "${targets[@]}"; do
        read -r crate test props <<<"$t"
        PROPTEST_CASES=$batch nice -n 19 cargo test --release -q -p "$crate" --test "$test" >/dev/null
        total=$((total + batch * props))
        (($(date +%s) < deadline)) || break
    done
done
echo "fuzz: $total cases, no failure"
