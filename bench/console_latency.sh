#!/usr/bin/env bash
# Serial console latency (issue 17): a byte typed -> echoed, median, through the daemon's WebSocket
# console against `ipmitool sol activate` run directly, against the same ipmi_sim SOL, in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
(cd plugins && cargo build --release -q --target wasm32-wasip2)
cargo build --release -q --workspace --bins
METALHOST_BIN_DIR="$PWD/target/release" cargo bench -q --workspace --bench console_latency
