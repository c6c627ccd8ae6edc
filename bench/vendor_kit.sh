#!/usr/bin/env bash
# Vendor kit benchmark (issue 8): wall time from `metalhost plugin new` to a passing `plugin test`
# for a power plugin (cold: a fresh target dir, dependencies compiled from the local registry;
# warm: a target dir that already holds them), and the wall time of one conformance run per kind
# (median of RUNS) against this repo's plugins. Needs root (the netboot suite makes a netns).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
if [ -z "${METALHOST:-}" ]; then
  cargo build -q --release -p metalhost
  METALHOST=$PWD/target/release/metalhost
fi
(cd plugins && cargo build -q --release --target wasm32-wasip2)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# new → build → test, as a vendor would run it; prints "new build test total" in ms.
new_to_pass() { # $1: crate name, $2: target dir
  local t0 t1 t2 t3
  t0=$(date +%s%N)
  "$METALHOST" plugin new --kind power "$1" --path "$WORK/$1" >/dev/null
  t1=$(date +%s%N)
  (cd "$WORK/$1" && CARGO_TARGET_DIR=$2 cargo build -q --offline --release --target wasm32-wasip2)
  t2=$(date +%s%N)
  "$METALHOST" plugin test "$2/wasm32-wasip2/release/${1//-/_}.wasm" --kind power >/dev/null
  t3=$(date +%s%N)
  echo "$(( (t1-t0)/1000000 )) $(( (t2-t1)/1000000 )) $(( (t3-t2)/1000000 )) $(( (t3-t0)/1000000 ))"
}

echo "plugin new → passing plugin test (power), ms:"
printf '  %-6s %6s %8s %8s %8s\n' "" new build test total
read -r n b t total < <(new_to_pass vk-cold "$WORK/target")
printf '  %-6s %6s %8s %8s %8s\n' cold "$n" "$b" "$t" "$total"
read -r n b t total < <(new_to_pass vk-warm "$WORK/target")
printf '  %-6s %6s %8s %8s %8s\n' warm "$n" "$b" "$t" "$total"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "one conformance run per kind (median of $RUNS), ms:"
run_kind() { # kind wasm [flags...]
  local kind=$1 wasm=$2; shift 2
  for _ in $(seq "$RUNS"); do
    local t0; t0=$(date +%s%N)
    "$METALHOST" plugin test "plugins/target/wasm32-wasip2/release/$wasm.wasm" --kind "$kind" "$@" >/dev/null
    ms "$t0"
  done | median
}
printf '  %-8s %-10s %8s\n' power ipmitool "$(run_kind power ipmitool)"
printf '  %-8s %-10s %8s\n' power freeipmi "$(run_kind power freeipmi --exec ipmi-power --exec ipmi-config)"
printf '  %-8s %-10s %8s\n' switch juniper "$(run_kind switch juniper)"
printf '  %-8s %-10s %8s\n' netboot dnsmasq "$(run_kind netboot dnsmasq)"
