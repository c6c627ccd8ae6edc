#!/usr/bin/env bash
# Issue 7: instance create -> deployed OS booted on a real QEMU VM through the daemon, against the pure
# boot path of the same VM without it (bench/boot_path.sh), in the same run. See bench/README.md.
# usage: bench/vm_deploy.sh [RUNS]     (default 3; needs root: netns, taps)
set -euo pipefail
cd "$(dirname "$0")/.."
(cd plugins && cargo build -q --release --target wasm32-wasip2)
cargo build -q --release -p metalhost -p metalhost-agent
METALHOST_BIN_DIR="$PWD/target/release" cargo bench -q -p metalhost-tests --bench vm_deploy -- "${1:-3}"
