#!/usr/bin/env bash
# IPMI over LAN without a tool (issue 15): one power-status round trip, the native ipmi-lan plugin
# vs the ipmitool plugin against the same ipmi_sim; then a power-sync sweep of 10,000 lab BMCs
# (tests/lab/ipmi_bmc.py) with the native plugin, through the PluginHost. Figures from one run.
set -euo pipefail
cd "$(dirname "$0")/.."
(cd plugins && cargo build -q --release --target wasm32-wasip2)
cargo bench -q -p metalhost-tests --bench ipmi_lan
