#!/usr/bin/env bash
# IPMI over LAN without a tool (issue 15): one power-status round trip, the native ipmi-lan plugin
# vs the ipmitool plugin against the same ipmi_sim; then a power-sync sweep of 10,000 lab BMCs
# (tests/lab/ipmi_bmc.py) with the native plugin, through the PluginHost and through the release
# daemon's own power-sync loop. Figures from one run.
set -euo pipefail
cd "$(dirname "$0")/.."
(cd plugins && cargo build -q --release --target wasm32-wasip2)
# Workspace-wide with the benches, like every build here: `-p` unifies features differently and
# rebuilds wasmtime.
cargo build --release -q --workspace --bins --benches
METALHOST_BIN_DIR="$PWD/target/release" cargo bench -q --workspace --bench ipmi_lan
