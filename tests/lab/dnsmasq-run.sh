#!/bin/sh
# Runs dnsmasq in the foreground inside netns NS with a config from dnsmasq-conf.sh. It execs, so the
# caller's PID is dnsmasq's: start it in the background, record $!, kill that PID to stop it, and send
# it SIGHUP to forget deleted dhcp-hostsdir entries. Foreground rather than daemonised: a supervisor
# sees it die (the lab saw one daemonised dnsmasq exit silently after a SIGHUP).
# usage: dnsmasq-run.sh NS CONF        (stdio as given by the caller; LOG=- logs to stderr)
NS=${1:?usage: dnsmasq-run.sh NS CONF}
CONF=${2:?usage: dnsmasq-run.sh NS CONF}
exec ip netns exec "$NS" dnsmasq --keep-in-foreground --conf-file="$CONF"
