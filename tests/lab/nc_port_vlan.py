#!/usr/bin/env python3
"""Independent NETCONF check for the tests: prints the access VLAN of a port on a switch, or "none".

Uses paramiko directly (not metalhost's Rust client) so a bug there cannot hide itself.
usage: nc_port_vlan.py HOST PORT USER PORTNAME   (password in env NC_PASSWORD)
"""
import os, re, sys, paramiko

host, port, user, ifname = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
client = paramiko.SSHClient()
client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
client.connect(host, port=port, username=user, password=os.environ["NC_PASSWORD"], look_for_keys=False, allow_agent=False, timeout=10)
chan = client.get_transport().open_session()
chan.invoke_subsystem("netconf")

def read_message():
    buf = b""
    while b"]]>]]>" not in buf:
        data = chan.recv(65536)
        if not data:
            raise SystemExit("connection closed")
        buf += data
    return buf.split(b"]]>]]>")[0].decode()

read_message()
chan.sendall(b'<?xml version="1.0" encoding="UTF-8"?><hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><capabilities><capability>urn:ietf:params:netconf:base:1.0</capability></capabilities></hello>]]>]]>')
chan.sendall(('<rpc xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="1"><get-config><source><running/></source>'
              '<filter type="subtree"><configuration><interfaces><interface><name>%s</name></interface></interfaces></configuration></filter>'
              '</get-config></rpc>]]>]]>' % ifname).encode())
reply = read_message()
m = re.search(r"<interface>\s*<name>%s</name>.*?<members>\s*(\d+)\s*</members>" % re.escape(ifname), reply, re.S)
print(m.group(1) if m else "none")
client.close()
