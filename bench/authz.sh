#!/usr/bin/env bash
# Authorization cost (issue 29): GET /v1/nodes with 10,000 nodes as an admin vs as a member of
# their project (the same rows), and a member's 100 instances among 10,000 vs the admin's all;
# medians measured in one run. BENCH_NODES changes the node count.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p metalhost
METALHOST_BIN_DIR="$PWD/target/release" cargo bench -q -p metalhost-tests --bench authz
