#!/bin/sh
# Creates the private lab network: netns NS with bridge br0 (10.99.0.1/24 and fd99::1/64) and taps
# tap0..tap{N-1} enslaved to it. Nothing is routed out of the namespace (no veth, no NAT), so VMs,
# dnsmasq and the HTTP server in it cannot touch the host's networks.
# usage: netns-up.sh NS N      (env BR_ADDR=10.99.0.1/24 BR_ADDR6=fd99::1/64 to change addresses)
# Refuses to reuse an existing namespace: it may belong to someone else. Undo with netns-down.sh NS.
set -eu
NS=${1:?usage: netns-up.sh NS N}
N=${2:-1}
BR_ADDR=${BR_ADDR:-10.99.0.1/24}
BR_ADDR6=${BR_ADDR6:-fd99::1/64}
if ip netns list | awk '{print $1}' | grep -qx "$NS"; then
  echo "netns-up.sh: netns $NS already exists (not ours to reuse; netns-down.sh $NS if it is stale)" >&2
  exit 1
fi
ip netns add "$NS"
# Half-built namespaces are removed rather than left behind.
trap 'ip netns del "$NS" 2>/dev/null' EXIT
x() { ip netns exec "$NS" "$@"; }
x ip link set lo up
x ip link add br0 type bridge
# No STP forwarding delay: a tap must forward the moment a VM's firmware starts DHCP.
x ip link set br0 type bridge forward_delay 0 stp_state 0
x ip addr add "$BR_ADDR" dev br0
# An IPv6 address lets dnsmasq send router advertisements; without RA iPXE stalls ~15 s. nodad: usable at once.
x ip -6 addr add "$BR_ADDR6" dev br0 nodad
x ip link set br0 up
i=0
while [ "$i" -lt "$N" ]; do
  x ip tuntap add dev "tap$i" mode tap
  x ip link set "tap$i" master br0 up
  i=$((i+1))
done
trap - EXIT
