#!/bin/sh
# ipmi_sim chassis_control hook for the test lab (see OpenIPMI lanserv/extcmd.c, bmc_chassis.c).
#   chassis-control.sh STATE_DIR MC get power boot   -> prints "power:0|1" and "boot:<dev>" lines
#   chassis-control.sh STATE_DIR MC set power "1"    -> power on; "0" off; set reset "1"; set boot "pxe"
# State lives in STATE_DIR: power (0/1), bootdev, and a log of every call. If STATE_DIR/on-power-on
# is executable, power-on runs it detached with the boot device as $1 (an agent process or a VM);
# power-off and reset kill it by its recorded PID. Nothing it starts may inherit our stdout:
# ipmi_sim popen()s this script and reads to EOF.
ST=$1; mc=$2; op=$3; shift 3
mkdir -p "$ST"
echo "$(date +%T.%N) $mc $op $*" >> "$ST/calls.log"
bootdev() { cat "$ST/bootdev" 2>/dev/null || echo default; }
child_running() { [ -f "$ST/child.pid" ] && kill -0 "$(cat "$ST/child.pid")" 2>/dev/null; }
powered() { [ "$(cat "$ST/power" 2>/dev/null)" = 1 ]; }
start_child() {
  [ -x "$ST/on-power-on" ] || return 0
  setsid "$ST/on-power-on" "$(bootdev)" </dev/null >>"$ST/child.log" 2>&1 &
  echo $! > "$ST/child.pid"
}
stop_child() {
  if child_running; then
    pid=$(cat "$ST/child.pid")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$ST/child.pid"
}
# A child that ended by itself (an agent told to power off) means the node is off.
if powered && [ -x "$ST/on-power-on" ] && [ -f "$ST/child.pid" ] && ! child_running; then
  echo 0 > "$ST/power"; rm -f "$ST/child.pid"
fi
case $op in
get)
  for k in "$@"; do case $k in
    power) if powered; then echo "power:1"; else echo "power:0"; fi ;;
    boot) echo "boot:$(bootdev)" ;;
  esac; done ;;
set)
  while [ $# -ge 2 ]; do k=$1; v=$2; shift 2; case $k in
    power) if [ "$v" = 1 ]; then powered || { echo 1 > "$ST/power"; start_child; }; else stop_child; echo 0 > "$ST/power"; fi ;;
    reset) stop_child; echo 1 > "$ST/power"; start_child ;;
    shutdown) stop_child; echo 0 > "$ST/power" ;;
    boot) echo "$v" > "$ST/bootdev" ;;
  esac; done ;;
esac
exit 0
