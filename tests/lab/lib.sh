# Shared helpers for the lab scripts (sourced, not run). Everything started through these helpers
# is recorded by PID and stopped by lab_cleanup, which lab_init installs as the EXIT/INT/TERM trap;
# so is every netns made with lab_netns. Set KEEP=1 to keep the temp dir for a post-mortem.
# shellcheck shell=bash

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB_ROOT=$(cd "$LAB_DIR/../.." && pwd)
LAB_PIDS=()
LAB_PIDFILES=()
LAB_NETNS=()

lab_log() { printf '[lab %s] %s\n' "$(date +%T.%3N)" "$*" >&2; }
lab_die() { lab_log "FAILED: $*"; exit 1; }

# lab_init NAME: a temp dir in $LAB_TMP and the cleanup trap.
lab_init() {
  LAB_TMP=$(mktemp -d "/tmp/metalhost-$1.XXXXXX")
  chmod 755 "$LAB_TMP" # dnsmasq drops to nobody and must read files under it
  trap lab_cleanup EXIT
  trap 'exit 130' INT TERM
}

# A process's start time (jiffies since boot): with the PID it names one process, never a reused PID.
lab_starttime() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $20}'; }

# lab_stop_pid PID[:STARTTIME]: TERM, then KILL after 3 s; skipped if the PID now names another process.
lab_stop_pid() {
  local pid=${1%%:*} start=${1#*:} i
  kill -0 "$pid" 2>/dev/null || return 0
  [ "$start" = "$1" ] || [ "$(lab_starttime "$pid")" = "$start" ] || return 0
  kill -TERM "$pid" 2>/dev/null
  for i in $(seq 30); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
  return 0
}

lab_cleanup() {
  local rc=$? p f ns
  for f in "${LAB_PIDFILES[@]}"; do [ -s "$f" ] && lab_stop_pid "$(cat "$f")"; done
  for p in "${LAB_PIDS[@]}"; do lab_stop_pid "$p"; done
  wait 2>/dev/null
  for ns in "${LAB_NETNS[@]}"; do "$LAB_DIR/netns-down.sh" "$ns"; done
  if [ -n "${LAB_TMP:-}" ]; then
    if [ "${KEEP:-0}" = 1 ] || [ $rc -ne 0 ]; then lab_log "logs kept in $LAB_TMP"; else rm -rf "$LAB_TMP"; fi
  fi
  return $rc
}

lab_track() { LAB_PIDS+=("$1:$(lab_starttime "$1")"); }
lab_track_pidfile() { LAB_PIDFILES+=("$1"); }

# lab_netns NS N: netns-up.sh, removed again on exit.
lab_netns() {
  "$LAB_DIR/netns-up.sh" "$1" "$2" || lab_die "netns-up.sh $1"
  LAB_NETNS+=("$1")
}

# lab_http DIR [NS [ADDR]]: an HTTP server for DIR on a free port (port 0, read back from its banner);
# sets LAB_HTTP_PORT. In NS it binds ADDR (default 10.99.0.1), otherwise 127.0.0.1.
lab_http() {
  local dir=$1 ns=${2:-} addr=${3:-} log="$LAB_TMP/http.$RANDOM.log" i
  if [ -n "$ns" ]; then
    ip netns exec "$ns" python3 -u -m http.server --bind "${addr:-10.99.0.1}" --directory "$dir" 0 >"$log" 2>&1 &
  else
    python3 -u -m http.server --bind 127.0.0.1 --directory "$dir" 0 >"$log" 2>&1 &
  fi
  lab_track $!
  LAB_HTTP_PORT=""
  for i in $(seq 100); do
    LAB_HTTP_PORT=$(sed -n 's/.*Serving HTTP on .* port \([0-9]*\).*/\1/p' "$log" | head -1)
    [ -n "$LAB_HTTP_PORT" ] && return 0
    sleep 0.05
  done
  lab_die "http server did not start: $(cat "$log")"
}

# lab_fake_agent FILE: a busybox script standing in for metalhost-agent: prints a marker with its
# arguments and the NIC's address, then powers the VM off.
lab_fake_agent() {
  cat > "$1" <<'SH'
#!/bin/sh
echo "METALHOST-FAKE-AGENT ran: $* ip=$(ip -4 -o addr show | awk '!/ lo /{print $4}' | head -1)"
sync
poweroff -f
SH
  chmod 755 "$1"
}

# lab_bootstrap [DIR]: the bootstrap image dir (default bootstrap/out), built if missing.
lab_bootstrap() {
  local dir=${1:-$LAB_ROOT/bootstrap/out}
  if [ ! -s "$dir/vmlinuz" ] || [ ! -s "$dir/initrd.gz" ]; then
    "$LAB_ROOT/bootstrap/build.sh" "$dir" >&2 || lab_die "bootstrap/build.sh"
  fi
  LAB_BOOTSTRAP=$(cd "$dir" && pwd)
}

# lab_ipxe_node_script FILE HOSTNAME MAC KERNEL_URL INITRD_URL ARGS: the per-node script in the exact
# format plugins/dnsmasq writes (plugins/dnsmasq/src/format.rs).
lab_ipxe_node_script() {
  printf '#!ipxe\necho metalhost: bootstrap for %s (%s)\nkernel %s %s\ninitrd %s\nboot\n' "$2" "$3" "$4" "$6" "$5" > "$1"
}

# lab_generic_ipxe FILE BASE_URL: the generic script the daemon serves at /v1/boot/boot.ipxe.
lab_generic_ipxe() {
  cat > "$1" <<EOF
#!ipxe
echo metalhost: netboot of \${mac}
chain $2/v1/boot/nodes/\${mac:hexhyp}.ipxe || goto none
:none
echo metalhost: no boot entry for \${mac}: not being provisioned
sleep 10
exit
EOF
}

# lab_pxe NS NTAPS: the PXE lab without the daemon: netns NS (br0 10.99.0.1, taps), a www tree laid out
# like the daemon's URLs (/v1/bootstrap/, /v1/boot/boot.ipxe, /v1/boot/nodes/, /v1/agent/binary) served
# from inside NS, and a foreground dnsmasq from dnsmasq-conf.sh with dhcp-hostsdir $LAB_HOSTS.
# Sets LAB_WWW, LAB_HOSTS, LAB_BASE (http://10.99.0.1:PORT), LAB_DNSMASQ_LOG. Needs lab_bootstrap first.
lab_pxe() {
  local ns=$1 ntaps=$2 i
  lab_netns "$ns" "$ntaps"
  LAB_WWW="$LAB_TMP/www" LAB_HOSTS="$LAB_TMP/hosts.d"
  mkdir -p "$LAB_WWW/v1/bootstrap" "$LAB_WWW/v1/boot/nodes" "$LAB_WWW/v1/agent" "$LAB_HOSTS" "$LAB_TMP/run"
  ln -s "$LAB_BOOTSTRAP/vmlinuz" "$LAB_WWW/v1/bootstrap/vmlinuz"
  ln -s "$LAB_BOOTSTRAP/initrd.gz" "$LAB_WWW/v1/bootstrap/initrd.gz"
  lab_http "$LAB_WWW" "$ns"
  LAB_BASE="http://10.99.0.1:$LAB_HTTP_PORT"
  lab_generic_ipxe "$LAB_WWW/v1/boot/boot.ipxe" "$LAB_BASE"
  HOSTSDIR=$LAB_HOSTS LEASEFILE=$LAB_TMP/run/dnsmasq.leases BOOT_URL=$LAB_BASE/v1/boot/boot.ipxe \
    "$LAB_DIR/dnsmasq-conf.sh" > "$LAB_TMP/dnsmasq.conf"
  LAB_DNSMASQ_LOG="$LAB_TMP/dnsmasq.log"
  "$LAB_DIR/dnsmasq-run.sh" "$ns" "$LAB_TMP/dnsmasq.conf" </dev/null >"$LAB_DNSMASQ_LOG" 2>&1 &
  LAB_DNSMASQ_PID=$!
  lab_track "$LAB_DNSMASQ_PID"
  for i in $(seq 100); do
    grep -q "DHCP, IP range" "$LAB_DNSMASQ_LOG" && return 0
    kill -0 "$LAB_DNSMASQ_PID" 2>/dev/null || lab_die "dnsmasq exited: $(cat "$LAB_DNSMASQ_LOG")"
    sleep 0.05
  done
  lab_die "dnsmasq did not start: $(cat "$LAB_DNSMASQ_LOG")"
}

# lab_pxe_node MAC IP HOSTNAME ARGS: the two files plugins/dnsmasq writes for a node, in its format:
# the dhcp-host entry and the per-node iPXE script (kernel + initrd from /v1/bootstrap/).
lab_pxe_node() {
  local mac=$1 ip=$2 host=$3 args=$4 name
  name=$(echo "$mac" | tr 'A-F:' 'a-f-')
  lab_ipxe_node_script "$LAB_WWW/v1/boot/nodes/.$name.ipxe.tmp" "$host" "$mac" \
    "$LAB_BASE/v1/bootstrap/vmlinuz" "$LAB_BASE/v1/bootstrap/initrd.gz" "$args"
  mv "$LAB_WWW/v1/boot/nodes/.$name.ipxe.tmp" "$LAB_WWW/v1/boot/nodes/$name.ipxe"
  echo "$mac,$ip,$host" > "$LAB_HOSTS/.$name.tmp"
  mv "$LAB_HOSTS/.$name.tmp" "$LAB_HOSTS/$name"
}
