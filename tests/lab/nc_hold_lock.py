#!/usr/bin/env python3
"""Holds a switch's candidate configuration locked, as an engineer in `configure exclusive` would,
until it is killed: prints "locked" once the lock is granted. paramiko, independent of metalhost.
usage: nc_hold_lock.py HOST PORT USER   (password in env NC_PASSWORD, never in argv)
"""
import os, sys, time

import paramiko

host, port, user = sys.argv[1], int(sys.argv[2]), sys.argv[3]
client = paramiko.SSHClient()
client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
client.connect(host, port=port, username=user, password=os.environ["NC_PASSWORD"], look_for_keys=False, allow_agent=False, timeout=10)
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
chan.sendall(b'<rpc xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="1"><lock><target><candidate/></target></lock></rpc>]]>]]>')
reply = read_message()
if b"<ok" not in reply:
    raise SystemExit("lock refused: " + reply.decode())
print("locked", flush=True)
while True:
    time.sleep(3600)
