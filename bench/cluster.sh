#!/usr/bin/env bash
# Several daemons on one pool (issue 19), each figure against its single-daemon SQLite baseline in
# the same run: 10,000 enrolments and a list, 100 process-agent deploys at once, and takeover after
# a SIGKILL and after a freeze (median of 5 each). BENCH_PARTS=34 runs only the takeovers. BENCH_NODES / BENCH_DEPLOY_NODES scale it down.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q --workspace --bins
METALHOST_BIN_DIR="$PWD/target/release" cargo bench -q --workspace --bench cluster
