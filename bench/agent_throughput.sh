#!/usr/bin/env bash
# See bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
(cd plugins && cargo build -q --release --target wasm32-wasip2)
cargo build -q --release -p metalhost -p metalhost-agent
METALHOST_BIN_DIR="$PWD/target/release" cargo bench -q -p metalhost-tests --bench agent_throughput
