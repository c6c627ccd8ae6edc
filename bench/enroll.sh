#!/usr/bin/env bash
# Enrolment benchmark (issue 2): 10,000 nodes through REST with a release daemon, list latency, and
# the ratio to raw rusqlite inserts measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q --workspace --bins
METALHOST_BIN_DIR="$PWD/target/release" cargo bench -q --workspace --bench enroll
