#!/usr/bin/env bash
# Scale (issue 33): figures at 10,000 nodes on one daemon, each against a baseline measured in the
# same run, with the ratio. BENCH_PARTS (comma separated) picks rows: `enrol` (enrolment on
# PostgreSQL vs SQLite, one daemon; goal >= 0.80), `sweep` (power sweep of 10,000 ipmi-lan BMCs
# against the compiled lab BMC vs the same sweep straight through the PluginHost; goals <= 5 s and
# <= 2x), `lists` (a page of 100 of 10,000 nodes, p95, goal <= 20 ms, vs the same page of 100 nodes;
# the whole list of 10,000, goal <= 60 ms, vs ten pages of 1,000; the daemon's RSS idle at 10,000),
# `deploys` (250 process-agent deploys at once: all active, host share goal <= 3 %, vs 25 at once;
# peak RSS). BENCH_NODES / BENCH_BMCS / BENCH_DEPLOYS scale them down.
set -euo pipefail
cd "$(dirname "$0")/.."
(cd plugins && cargo build -q --release --target wasm32-wasip2)
# Workspace-wide, like every build here: `-p` unifies features differently and rebuilds wasmtime.
cargo build --release -q --workspace --bins --benches
METALHOST_BIN_DIR="$PWD/target/release" cargo bench -q --workspace --bench scale
