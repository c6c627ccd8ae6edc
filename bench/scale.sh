#!/usr/bin/env bash
# Scale (issue 33): figures at 10,000 nodes on one daemon, each against a baseline measured in the
# same run, with the ratio. BENCH_PARTS (comma separated) picks rows: `enrol` (enrolment on
# PostgreSQL vs SQLite, one daemon; goal >= 0.80), `sweep` (power sweep of 10,000 ipmi-lan BMCs
# against the compiled lab BMC vs the same sweep straight through the PluginHost; goals <= 5 s and
# <= 2x). BENCH_NODES / BENCH_BMCS scale them down.
set -euo pipefail
cd "$(dirname "$0")/.."
(cd plugins && cargo build -q --release --target wasm32-wasip2)
# Workspace-wide, like every build here: `-p` unifies features differently and rebuilds wasmtime.
cargo build --release -q --workspace --bins --benches
METALHOST_BIN_DIR="$PWD/target/release" cargo bench -q --workspace --bench scale
