#!/usr/bin/env bash
# What metrics cost (issue 18): plugin call median with and without a Prometheus recorder, and the
# enrolment rate of a daemon with and without `[metrics]` (bench/enroll.sh prints both).
set -euo pipefail
cd "$(dirname "$0")/.."
(cd plugins && cargo build -q --release --target wasm32-wasip2)
cargo bench -q --workspace --bench metrics_cost
bench/enroll.sh
