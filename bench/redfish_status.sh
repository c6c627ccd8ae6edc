#!/usr/bin/env bash
# Redfish power status (issue 14): through the release daemon and the Redfish plugin, against curl
# of the same URL on the same sushy-emulator, printed from one run (needs scripts/setup's venv).
set -euo pipefail
cd "$(dirname "$0")/.."
(cd plugins && cargo build -q --release --target wasm32-wasip2)
# Workspace-wide with the benches, like every build here: `-p` unifies features differently and
# rebuilds wasmtime.
cargo build --release -q --workspace --bins --benches
METALHOST_BIN_DIR="$PWD/target/release" cargo bench -q --workspace --bench redfish_status
