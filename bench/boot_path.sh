#!/usr/bin/env bash
# The pure boot path of one VM without the daemon: the baseline the daemon's deploy time is compared
# against (issue 7, target: daemon overhead at most 10% of the total).
#
# Per run, in a private netns with dnsmasq (tests/lab/dnsmasq-conf.sh) and a plain HTTP server laid
# out like the daemon's URLs: power on (qemu -boot n) -> iPXE -> bootstrap kernel + initramfs over
# HTTP -> /init DHCP -> "agent" download -> the agent (a busybox script: wget | gunzip | dd to
# /dev/vda, read-back sha256) -> poweroff -> host checks the disk's sha256 -> power on from disk ->
# the demo OS's "booted" marker. Times come from the serial console, per stage; the median of RUNS.
# IPMI is left out (ipmitool -C 3 is ~30 ms a call against ipmi_sim, measured on the lab machine).
# usage: bench/boot_path.sh [RUNS]     (default 3; env BOOTSTRAP_DIR, KEEP=1 keeps the logs)
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/lab/lib.sh
runs=${1:-3}
lab_init boot-path
lab_bootstrap "${BOOTSTRAP_DIR:-}"
bootstrap/os-image.sh "$LAB_TMP/os.img" --bootstrap "$LAB_BOOTSTRAP" --poweroff >&2
image_sha=$(sha256sum "$LAB_TMP/os.img" | cut -d' ' -f1)
image_size=$(stat -c %s "$LAB_TMP/os.img")
ns="mhbench$$"
lab_pxe "$ns" 1
gzip -1 -c "$LAB_TMP/os.img" > "$LAB_WWW/os.img.gz"
cat > "$LAB_WWW/v1/agent/binary" <<'SH'
#!/bin/sh
# Stand-in for metalhost-agent: stream the image to the disk, flush, read it back, power off.
API=$2
echo "[fake-agent] writing $API/os.img.gz to /dev/vda"
wget -q -O - "$API/os.img.gz" | gunzip -c | dd of=/dev/vda bs=1M conv=fsync 2>/dev/null
sync
echo "[fake-agent] image written at $(cut -d' ' -f1 /proc/uptime)s"
echo "[fake-agent] read-back sha256 $(dd if=/dev/vda bs=1M count=32 2>/dev/null | sha256sum | cut -d' ' -f1)"
poweroff -f
SH
chmod 755 "$LAB_WWW/v1/agent/binary"
mac=52:54:00:be:00:01
lab_pxe_node "$mac" 10.99.0.11 bench1 "console=ttyS0 quiet panic=-1 metalhost.api=$LAB_BASE"
lab_log "image $((image_size >> 20)) MiB sha256 ${image_sha:0:12}…, $runs runs"

now() { date +%s.%N; }
# vm NAME BOOT: start a VM on tap0 with the bench disk; sets VM_PID and T0.
vm() {
  T0=$(now)
  tests/lab/qemu-vm.sh "$2" --name "$1" --ns "$ns" --net tap:tap0 --mac "$mac" --disk "$LAB_TMP/disk.raw" \
    --serial "$LAB_TMP/$1.serial" --pidfile "$LAB_TMP/$1.pid" || lab_die "qemu: $(cat "$LAB_TMP/$1.serial.qemu")"
  VM_PID=$(cat "$LAB_TMP/$1.pid")
  lab_track "$VM_PID"
}
wait_off() { while kill -0 "$VM_PID" 2>/dev/null; do sleep 0.05; done; }
# at OUTPUT MARKER: the time waitlog.py printed for MARKER.
at() { awk -v m="$2" 'index($0, m) { sub(/s$/, "", $1); print $1; exit }' <<< "$1"; }

results="$LAB_TMP/results"
: > "$results"
for run in $(seq "$runs"); do
  truncate -s 0 "$LAB_TMP/disk.raw" && truncate -s 64M "$LAB_TMP/disk.raw"
  vm "pxe$run" pxe
  out=$(tests/lab/waitlog.py "$LAB_TMP/pxe$run.serial" 300 --t0 "$T0" --pid "$VM_PID" --fail "[bootstrap] FAILED" \
    "[bootstrap] up at" "bound 10.99.0.11" "[bootstrap] agent downloaded" "[fake-agent] image written" "[fake-agent] read-back") \
    || lab_die "run $run provisioning: $out; console:\n$(cat "$LAB_TMP/pxe$run.serial")"
  wait_off
  t_off=$(echo "$(now) - $T0" | bc)
  t_check0=$(now)
  disk_sha=$(head -c "$image_size" "$LAB_TMP/disk.raw" | sha256sum | cut -d' ' -f1)
  [ "$disk_sha" = "$image_sha" ] || lab_die "run $run: disk sha256 $disk_sha != image $image_sha"
  t_check=$(echo "$(now) - $t_check0" | bc)
  vm "disk$run" disk
  out2=$(tests/lab/waitlog.py "$LAB_TMP/disk$run.serial" 120 --t0 "$T0" --pid "$VM_PID" "metalhost-demo-os: booted") \
    || lab_die "run $run disk boot: $out2; console:\n$(cat "$LAB_TMP/disk$run.serial")"
  wait_off
  init=$(at "$out" "[bootstrap] up at"); bound=$(at "$out" "bound 10.99"); agent=$(at "$out" "agent downloaded")
  written=$(at "$out" "image written"); verified=$(at "$out" "read-back"); disk=$(at "$out2" "metalhost-demo-os")
  # fields: power-on->/init, dhcp, agent download, image write, read-back, ->power off, provisioning, disk boot, total
  echo "$init $(echo "$bound - $init" | bc) $(echo "$agent - $bound" | bc) $(echo "$written - $agent" | bc) \
$(echo "$verified - $written" | bc) $(echo "$t_off - $verified" | bc) $t_off $disk \
$(echo "$t_off + $t_check + $disk" | bc)" >> "$results"
  lab_log "run $run: $(tail -1 "$results")"
done

python3 - "$results" <<'PY'
import statistics, sys
rows = [[float(x) for x in line.split()] for line in open(sys.argv[1]) if line.strip()]
names = ["power-on -> bootstrap /init (firmware, iPXE, kernel+initrd over HTTP)", "DHCP in the initramfs",
         "agent download", "image write (32 MiB gz -> /dev/vda, fsync)", "read-back sha256 of 32 MiB",
         "poweroff -f -> qemu gone",
         "provisioning total (power-on -> off)", "disk boot (power-on -> demo OS marker)",
         "whole boot path (provision + sha check + disk boot)"]
print(f"boot path without the daemon, {len(rows)} runs (seconds; median [min-max])")
for i, name in enumerate(names):
    col = [r[i] for r in rows]
    print(f"  {name:<58} {statistics.median(col):6.2f}  [{min(col):.2f}-{max(col):.2f}]")
PY
