#!/usr/bin/env bash
# Issue 30: `instance create` -> first SSH login into the real Debian guest (cloud-init read the
# config drive), BIOS and UEFI, next to the image write alone and the config drive's own share, as
# measured in the same runs of tests/tests/debian_guest_vms.rs (its `debian guest:` lines).
# usage: bench/debian_guest.sh [RUNS]     (default 3; root: netns, taps; the test's debug build)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
export METALHOST_BIN_DIR=${METALHOST_BIN_DIR:-$PWD/target/debug}
cargo build -q -p metalhost -p metalhost-agent
lines=$(mktemp)
trap 'rm -f "$lines"' EXIT
for i in $(seq "$runs"); do
  cargo test -q -p metalhost-tests --test debian_guest_vms -- --nocapture 2>&1 | grep '^debian guest: ' | tee -a "$lines"
done
# "debian guest: BIOS: create -> first SSH login 190 s; image write 41.2 s; config drive 35 ms (0.018 % of the deploy)"
python3 - "$lines" <<'PY'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    m = re.search(r"(BIOS|UEFI): create -> first SSH login (\d+) s; image write ([\d.]+) s; config drive (\d+) ms \(([\d.]+) %", line)
    if m:
        rows.setdefault(m.group(1), []).append(tuple(float(x) for x in m.groups()[1:]))
for fw, samples in sorted(rows.items()):
    login, write, drive, share = (statistics.median(c) for c in zip(*samples))
    print(f"{fw}: median of {len(samples)}: create -> SSH login {login:.0f} s; image write alone {write:.1f} s "
          f"(ratio login/write {login / write:.1f}); config drive {drive:.0f} ms = {share:.3f} % of the deploy (goal < 2 %)")
PY
