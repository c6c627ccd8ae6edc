#!/usr/bin/env bash
# Smoke test of the bootstrap image without the daemon: boots vmlinuz + initrd.gz under QEMU with
# user-mode networking (restrict=on: the guest reaches only a loopback HTTP server, through guestfwd),
# where /v1/agent/binary is a busybox script that prints a marker and powers off. Checks the markers
# on the serial console; then boots once without metalhost.api= and checks /init says why and powers
# off by itself instead of hanging.
# usage: tests/lab/smoke-bootstrap.sh [BOOTSTRAP_DIR]   (default bootstrap/out, built if missing)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
lab_init smoke-bootstrap
lab_bootstrap "${1:-}"

www="$LAB_TMP/www"
mkdir -p "$www/v1/agent"
lab_fake_agent "$www/v1/agent/binary"
lab_http "$www"
lab_log "http server on 127.0.0.1:$LAB_HTTP_PORT; bootstrap image $LAB_BOOTSTRAP"

boot() { # boot NAME APPEND: starts the VM, sets T0 and VM_PID
  local name=$1 append=$2
  : > "$LAB_TMP/$name.serial"
  local pidfile="$LAB_TMP/$name.pid"
  T0=$(date +%s.%N)
  "$LAB_DIR/qemu-vm.sh" --name "$name" --net "user:$LAB_HTTP_PORT" --mac 52:54:00:00:00:42 \
    --kernel "$LAB_BOOTSTRAP/vmlinuz" --initrd "$LAB_BOOTSTRAP/initrd.gz" --append "$append" \
    --serial "$LAB_TMP/$name.serial" --pidfile "$pidfile" || lab_die "qemu did not start: $(cat "$LAB_TMP/$name.serial.qemu")"
  # qemu deletes its pidfile when it exits: keep the PID.
  VM_PID=$(cat "$pidfile")
  lab_track "$VM_PID"
}
wait_exit() { # wait_exit PID TIMEOUT: the VM powered itself off
  local pid=$1 i
  for i in $(seq $(($2 * 10))); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  return 1
}

lab_log "boot 1: metalhost.api points at the fake agent"
boot ok "console=ttyS0 quiet panic=-1 metalhost.api=http://10.0.2.100"
"$LAB_DIR/waitlog.py" "$LAB_TMP/ok.serial" 120 --t0 "$T0" --pid "$VM_PID" --fail "[bootstrap] FAILED" \
  "[bootstrap] up at" "[bootstrap] modules:" "[bootstrap] nic eth0 mac 52:54:00:00:00:42" "bound 10.0.2.15" \
  "[bootstrap] agent downloaded" "METALHOST-FAKE-AGENT ran: --api http://10.0.2.100 ip=10.0.2.15/24" \
  || lab_die "boot 1; console:\n$(cat "$LAB_TMP/ok.serial")"
wait_exit "$VM_PID" 20 || lab_die "boot 1: the fake agent's poweroff did not end the VM"
lab_log "boot 1 passed"

lab_log "boot 2: no metalhost.api= on the command line"
boot noapi "console=ttyS0 quiet panic=-1"
"$LAB_DIR/waitlog.py" "$LAB_TMP/noapi.serial" 120 --t0 "$T0" --pid "$VM_PID" \
  "[bootstrap] FAILED: no metalhost.api=URL on the kernel command line; powering off in 10 s" \
  || lab_die "boot 2; console:\n$(cat "$LAB_TMP/noapi.serial")"
wait_exit "$VM_PID" 30 || lab_die "boot 2: /init did not power off after failing"
lab_log "boot 2 passed: /init reported the failure and powered off"
echo "smoke-bootstrap: PASS"
