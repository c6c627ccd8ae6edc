#!/usr/bin/env bash
# Web view benchmark (issue 17): first page weight, and the /ui pool page with 10,000 nodes against
# the JSON listing of the same nodes measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p metalhost
METALHOST_BIN_DIR="$PWD/target/release" cargo bench -q -p metalhost-tests --bench ui_pool
