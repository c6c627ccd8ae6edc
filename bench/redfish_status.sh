#!/usr/bin/env bash
# Redfish power status (issue 14): through the release daemon and the Redfish plugin, against curl
# of the same URL on the same sushy-emulator, printed from one run (needs scripts/setup's venv).
set -euo pipefail
cd "$(dirname "$0")/.."
(cd plugins && cargo build -q --release --target wasm32-wasip2)
cargo build --release -q -p metalhost
METALHOST_BIN_DIR="$PWD/target/release" cargo bench -q -p metalhost-tests --bench redfish_status
