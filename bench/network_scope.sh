#!/usr/bin/env bash
# Per-call cost of the network scope (issue 28): exec'd `ipmitool chassis power status` against
# ipmi_sim, confined, without and with the per-call cgroup and its BPF filters; median of 200 each,
# interleaved, and their ratio, from one run.
set -euo pipefail
cd "$(dirname "$0")/.."
# Workspace-wide with the benches, like every build here: `-p` unifies features differently.
cargo build --release -q --workspace --bins --benches
cargo bench -q --workspace --bench network_scope
