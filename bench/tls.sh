#!/usr/bin/env bash
# What TLS costs (issue 31): the agent's image write and GET /v1/nodes/{id} latency, each against
# the same daemon with [tls] enabled = false in the same run (tests/benches/tls.rs). See
# bench/README.md. BENCH_IMAGE_MIB (default 256), BENCH_RUNS (3), BENCH_GETS (2000).
set -euo pipefail
cd "$(dirname "$0")/.."
(cd plugins && cargo build -q --release --target wasm32-wasip2)
cargo build -q --release -p metalhost -p metalhost-agent
METALHOST_BIN_DIR="$PWD/target/release" cargo bench -q -p metalhost-tests --bench tls
