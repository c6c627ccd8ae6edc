#!/bin/sh
# Removes a lab netns made by netns-up.sh. Processes still running inside it (qemu, dnsmasq, an HTTP
# server) are the lab's own: they are stopped by PID (TERM, then KILL after 2 s), because a qemu
# holding a tap would keep the interface alive after the namespace is gone.
# usage: netns-down.sh NS        (a missing namespace is not an error)
NS=${1:?usage: netns-down.sh NS}
ip netns list | awk '{print $1}' | grep -qx "$NS" || exit 0
pids=$(ip netns pids "$NS" 2>/dev/null)
if [ -n "$pids" ]; then
  kill -TERM $pids 2>/dev/null
  i=0
  while [ $i -lt 20 ]; do
    left=""
    for p in $pids; do kill -0 "$p" 2>/dev/null && left="$left $p"; done
    [ -z "$left" ] && break
    sleep 0.1; i=$((i+1))
  done
  [ -n "$left" ] && kill -KILL $left 2>/dev/null
fi
ip netns del "$NS"
