#!/usr/bin/env bash
# Plugin runtime benchmark (issue 3): per-call overhead vs native, and a 10,000-node sweep.
set -euo pipefail
cd "$(dirname "$0")/.."
(cd plugins && cargo build -q --release --target wasm32-wasip2)
# Workspace-wide, like every build here: `-p` unifies features differently and rebuilds wasmtime.
cargo bench -q --workspace --bench runtime
