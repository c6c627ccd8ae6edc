#!/usr/bin/env python3
"""Independent NETCONF check for the tests: prints a port's switching config in the running datastore as JSON.

It uses paramiko and lxml, not metalhost's Rust client or the plugin's XML scan, so a bug there cannot hide itself.
usage: nc_port_config.py HOST PORT USER PORTNAME   (password in env NC_PASSWORD, never in argv)
output: {"members": [200], "mode": {"port-mode": "access"}}   members/mode empty when the port has no config
"""
import json, os, sys

import paramiko
from lxml import etree

host, port, user, ifname = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
client = paramiko.SSHClient()
client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
client.connect(host, port=port, username=user, password=os.environ["NC_PASSWORD"],
               look_for_keys=False, allow_agent=False, timeout=10)
chan = client.get_transport().open_session()
chan.settimeout(20)
chan.invoke_subsystem("netconf")
buf = b""

def read_message():
    global buf
    while b"]]>]]>" not in buf:
        data = chan.recv(65536)
        if not data:
            raise SystemExit("the switch closed the connection")
        buf += data
    message, buf = buf.split(b"]]>]]>", 1)
    return message.strip()

read_message()  # the server hello
chan.sendall(b'<?xml version="1.0" encoding="UTF-8"?><hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><capabilities>'
             b'<capability>urn:ietf:params:netconf:base:1.0</capability></capabilities></hello>]]>]]>')
chan.sendall(('<rpc xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="1"><get-config><source><running/></source>'
              '<filter type="subtree"><configuration><interfaces><interface><name>%s</name></interface></interfaces></configuration></filter>'
              '</get-config></rpc>]]>]]>' % ifname).encode())
reply = etree.fromstring(read_message())
if reply.xpath("//*[local-name()='rpc-error']"):
    raise SystemExit("rpc-error: " + etree.tostring(reply).decode())
result = {"members": [], "mode": {}}
for interface in reply.xpath("//*[local-name()='interface']"):
    names = interface.xpath("./*[local-name()='name']/text()")
    if not names or names[0].strip() != ifname:
        continue
    switching = interface.xpath(".//*[local-name()='unit']/*[local-name()='family']/*[local-name()='ethernet-switching']")
    for es in switching:
        result["members"] += [int(m.strip()) for m in es.xpath("./*[local-name()='vlan']/*[local-name()='members']/text()")]
        for leaf in ("port-mode", "interface-mode"):
            for value in es.xpath("./*[local-name()='%s']/text()" % leaf):
                result["mode"][leaf] = value.strip()
print(json.dumps(result))
client.close()
