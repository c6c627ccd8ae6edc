#!/usr/bin/env bash
# PXE smoke test without the daemon: in a private netns, dnsmasq (config from dnsmasq-conf.sh) gives
# a VM its reserved address from a dhcp-hostsdir entry; qemu's iPXE ROM (-boot n) loads the generic
# script, chains to the node's script (the format plugins/dnsmasq writes), boots the bootstrap image
# over HTTP, whose /init DHCPs again and runs the fake agent from /v1/agent/binary.
# usage: tests/lab/smoke-pxe.sh [BOOTSTRAP_DIR]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
lab_init smoke-pxe
lab_bootstrap "${1:-}"
ns="mhsmoke$$"
lab_pxe "$ns" 1
lab_fake_agent "$LAB_WWW/v1/agent/binary"
mac=52:54:00:5a:00:01
lab_pxe_node "$mac" 10.99.0.11 smoke1 "console=ttyS0 quiet panic=-1 metalhost.api=$LAB_BASE"
lab_log "netns $ns, http $LAB_BASE, dnsmasq pid $LAB_DNSMASQ_PID"

T0=$(date +%s.%N)
"$LAB_DIR/qemu-vm.sh" pxe --name smoke1 --ns "$ns" --net tap:tap0 --mac "$mac" \
  --serial "$LAB_TMP/smoke1.serial" --pidfile "$LAB_TMP/smoke1.pid" || lab_die "qemu: $(cat "$LAB_TMP/smoke1.serial.qemu")"
vm=$(cat "$LAB_TMP/smoke1.pid")
lab_track "$vm"
"$LAB_DIR/waitlog.py" "$LAB_TMP/smoke1.serial" 180 --t0 "$T0" --pid "$vm" --fail "[bootstrap] FAILED" \
  "[bootstrap] up at" "eth0 bound 10.99.0.11/24" "[bootstrap] agent downloaded" \
  "METALHOST-FAKE-AGENT ran: --api $LAB_BASE ip=10.99.0.11/24" \
  || lab_die "console:\n$(cat "$LAB_TMP/smoke1.serial")\ndnsmasq:\n$(cat "$LAB_DNSMASQ_LOG")"
grep -q "DHCPACK(br0) 10.99.0.11 $mac smoke1" "$LAB_DNSMASQ_LOG" || lab_die "dnsmasq did not ack the reservation: $(cat "$LAB_DNSMASQ_LOG")"
echo "smoke-pxe: PASS"
