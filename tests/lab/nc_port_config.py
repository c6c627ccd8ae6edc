#!/usr/bin/env python3
"""Independent NETCONF check for the tests: prints a port's switching config in the running datastore as JSON.

It uses paramiko and lxml, not metalhost's Rust client or the plugin's XML scan, so a bug there cannot hide itself.
usage: nc_port_config.py HOST PORT USER PORTNAME   (password in env NC_PASSWORD, never in argv)
output: {"members": [200], "mode": {"port-mode": "access"}}   members/mode empty when the port has no config

       nc_port_config.py HOST PORT USER --watch MS PORTNAME...
Keeps one session and reads the running config every MS milliseconds; prints one line
{"PORTNAME": {"members": [...], "mode": {...}}, ...} at once and again whenever a port's config changes
(the VM lab's switch follower, tests/src/switch_follower.rs, applies it to the lab's bridges). A dropped
session is opened again; it ends when its stdin closes (the test process is gone) or it is killed.
"""
import json, os, sys, threading, time

import paramiko
from lxml import etree


class Session:
    def __init__(self, host, port, user):
        self.client = paramiko.SSHClient()
        self.client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        self.client.connect(host, port=port, username=user, password=os.environ["NC_PASSWORD"],
                            look_for_keys=False, allow_agent=False, timeout=10)
        self.chan = self.client.get_transport().open_session()
        self.chan.settimeout(20)
        self.chan.invoke_subsystem("netconf")
        self.buf = b""
        self.message_id = 0
        self.read_message()  # the server hello
        self.chan.sendall(b'<?xml version="1.0" encoding="UTF-8"?><hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><capabilities>'
                          b'<capability>urn:ietf:params:netconf:base:1.0</capability></capabilities></hello>]]>]]>')

    def read_message(self):
        while b"]]>]]>" not in self.buf:
            data = self.chan.recv(65536)
            if not data:
                raise SystemExit("the switch closed the connection")
            self.buf += data
        message, self.buf = self.buf.split(b"]]>]]>", 1)
        return message.strip()

    def interfaces(self, ifnames):
        """The running config of these ports: {name: {"members": [...], "mode": {...}}}."""
        self.message_id += 1
        # One port: a filter naming it (as this checker always asked); several: every interface.
        wanted = "<interface><name>%s</name></interface>" % ifnames[0] if len(ifnames) == 1 else ""
        self.chan.sendall(('<rpc xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="%d"><get-config><source><running/></source>'
                           '<filter type="subtree"><configuration><interfaces>%s</interfaces></configuration></filter>'
                           '</get-config></rpc>]]>]]>' % (self.message_id, wanted)).encode())
        reply = etree.fromstring(self.read_message())
        if reply.xpath("//*[local-name()='rpc-error']"):
            raise SystemExit("rpc-error: " + etree.tostring(reply).decode())
        results = {}
        for ifname in ifnames:
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
            results[ifname] = result
        return results

    def close(self):
        self.client.close()


def watch(host, port, user, interval_ms, ifnames):
    # The test process holds our stdin: when it is gone, so are we.
    def stdin_closed():
        sys.stdin.read()
        os._exit(0)
    threading.Thread(target=stdin_closed, daemon=True).start()
    last = None
    session = None
    while True:
        try:
            if session is None:
                session = Session(host, port, user)
            now = session.interfaces(ifnames)
            if now != last:
                print(json.dumps(now, sort_keys=True), flush=True)
                last = now
        except (Exception, SystemExit) as e:  # a dropped session: say so, open another
            print("nc_port_config.py: %s; reconnecting" % e, file=sys.stderr, flush=True)
            if session is not None:
                try:
                    session.close()
                except Exception:
                    pass
            session = None
            time.sleep(0.5)
        time.sleep(interval_ms / 1000.0)


def main():
    host, port, user = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if sys.argv[4] == "--watch":
        watch(host, port, user, int(sys.argv[5]), sys.argv[6:])
        return
    ifname = sys.argv[4]
    session = Session(host, port, user)
    print(json.dumps(session.interfaces([ifname])[ifname]))
    session.close()


main()
