#!/usr/bin/env python3
"""A small IPMI 2.0 BMC for the lab: RMCP+ with cipher suites 3 and 17 (ipmi_sim speaks 3 only).

Written from the IPMI 2.0 spec, independently of the ipmi-lan plugin, and proven against
`ipmitool -I lanplus -C 17` (tests/tests/ipmi_lan.rs). Answers Get Channel Authentication
Capabilities, Get Channel Cipher Suites, Open Session, RAKP 1/3, and inside a session: Set Session
Privilege Level, Get Chassis Status, Chassis Control, Set/Get System Boot Options, Close Session.

  ipmi_bmc.py --port 0 --user admin [--suites 17,3] [--drop-every 3] [--lose-reset-reply] [--state-dir DIR] [--bmcs N] [--trace FILE]

The password comes from $IPMI_BMC_PASSWORD (never argv). Prints "ready PORT" once bound. With
--state-dir it keeps `power` (0/1), `boot` ("pxe once efi"...) and `calls.log` there, like the
ipmi_sim chassis hook; `received` counts datagrams. --bmcs N serves N BMCs (benchmarks) on
consecutive ports from PORT, or free ports listed in DIR/ports with PORT 0, each with its own
power state, in memory. Inside a session a packet whose sequence number was already accepted is
discarded (the RMCP+ replay check); --lose-reset-reply runs the first hard reset but loses its reply,
as a lossy network would.
"""
import argparse
import hashlib
import hmac
import os
import selectors
import socket
import struct
import sys

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

SUITES = {3: (0x01, 0x01, 0x01, hashlib.sha1, 12), 17: (0x03, 0x04, 0x01, hashlib.sha256, 16)}
BY_ALGS = {(a, i, c): s for s, (a, i, c, _, _) in SUITES.items()}
RMCP = b"\x06\x00\xff\x07"


def mac(h, key, data):
    return hmac.new(key, data, h).digest()


def cksum(b):
    return (-sum(b)) & 0xFF


class Bmc:
    def __init__(self, args, password, state_dir):
        self.user = args.user.encode()
        self.key = password.encode()[:20].ljust(20, b"\0")
        self.suites = [int(s) for s in args.suites.split(",")]
        self.state_dir = state_dir
        self.lose_reset_reply = args.lose_reset_reply
        self.power = 0
        self.boot = "none"
        self.sessions = {}
        self.next_id = 0x1000
        self.guid = bytes(range(16))
        if state_dir:
            os.makedirs(state_dir, exist_ok=True)
            self.save()

    def log(self, line):
        if self.state_dir:
            with open(os.path.join(self.state_dir, "calls.log"), "a") as f:
                f.write(line + "\n")

    def save(self):
        if self.state_dir:
            for name, value in (("power", str(self.power)), ("boot", self.boot)):
                path = os.path.join(self.state_dir, name)
                with open(path + ".new", "w") as f:
                    f.write(value + "\n")
                os.replace(path + ".new", path)

    # ---- packets -------------------------------------------------------------------------
    def handle(self, pkt):
        if len(pkt) < 5 or pkt[:1] != b"\x06" or pkt[3] & 0x1F != 0x07:
            return None
        if pkt[4] == 0x00:  # IPMI 1.5 sessionless
            n = pkt[13]
            msg = pkt[14:14 + n]
            resp = self.command(None, msg)
            return RMCP + b"\x00" + b"\0" * 8 + bytes([len(resp)]) + resp if resp else None
        if pkt[4] != 0x06:
            return None
        ptype = pkt[5]
        sid, seq, length = struct.unpack("<IIH", pkt[6:16])
        payload = pkt[16:16 + length]
        kind = ptype & 0x3F
        if kind == 0x10:
            return self.open_session(payload)
        if kind == 0x12:
            return self.rakp1(payload)
        if kind == 0x14:
            return self.rakp3(payload)
        if kind != 0x00:
            return None
        if sid == 0:
            resp = self.command(None, payload)
            return self.wrap(None, 0x00, resp) if resp else None
        s = self.sessions.get(sid)
        if s is None or "k1" not in s:
            return None
        h, icv = SUITES[s["suite"]][3], SUITES[s["suite"]][4]
        if ptype & 0x40:
            if hmac.compare_digest(mac(h, s["k1"], pkt[4:-icv])[:icv], pkt[-icv:]) is False:
                self.log("integrity check failed")
                return None
        if seq in s["seen"]:
            self.log(f"duplicate sequence number {seq} discarded")
            return None
        s["seen"] = s["seen"][-15:] + [seq]
        if ptype & 0x80:
            iv, ct = payload[:16], payload[16:]
            d = Cipher(algorithms.AES(s["aes"]), modes.CBC(iv)).decryptor()
            plain = d.update(ct) + d.finalize()
            payload = plain[: len(plain) - plain[-1] - 1]
        resp = self.command(s, payload)
        if resp is None:
            return None
        if self.lose_reset_reply and payload[1] >> 2 == 0x00 and payload[5] == 0x02 and payload[6] & 0x0F == 0x03:
            self.lose_reset_reply = False
            self.log("reply to chassis control 3 lost")
            return None
        out = self.wrap(s, 0xC0, resp)
        if payload[5] == 0x3C:  # Close Session: answered inside the session, then forgotten
            self.sessions.pop(sid, None)
        return out

    def wrap(self, s, flags, payload):
        if s is None:
            return RMCP + bytes([0x06, flags]) + struct.pack("<IIH", 0, 0, len(payload)) + payload
        s["seq"] += 1
        pad = (16 - (len(payload) + 1) % 16) % 16
        data = payload + bytes(range(1, pad + 1)) + bytes([pad])
        iv = os.urandom(16)
        e = Cipher(algorithms.AES(s["aes"]), modes.CBC(iv)).encryptor()
        body = iv + e.update(data) + e.finalize()
        head = bytes([0x06, flags]) + struct.pack("<IIH", s["console_sid"], s["seq"], len(body)) + body
        ipad = (4 - (len(head) + 2) % 4) % 4
        head += b"\xff" * ipad + bytes([ipad, 0x07])
        h, icv = SUITES[s["suite"]][3], SUITES[s["suite"]][4]
        return RMCP + head + mac(h, s["k1"], head)[:icv]

    def open_session(self, p):
        tag, console_sid = p[0], struct.unpack("<I", p[4:8])[0]
        algs = (p[12] & 0x3F, p[20] & 0x3F, p[28] & 0x3F)
        suite = BY_ALGS.get(algs)
        if suite is None or suite not in self.suites:
            self.log(f"open session refused: algorithms {algs}")
            return self.wrap(None, 0x11, bytes([tag, 0x11, 0, 0]) + struct.pack("<I", console_sid))
        self.next_id += 1
        sid = self.next_id
        self.sessions[sid] = {"suite": suite, "console_sid": console_sid, "seq": 0, "seen": []}
        body = bytes([tag, 0, 4, 0]) + struct.pack("<II", console_sid, sid) + p[8:32]
        self.log(f"open session suite {suite}")
        return self.wrap(None, 0x11, body)

    def rakp1(self, p):
        tag, sid = p[0], struct.unpack("<I", p[4:8])[0]
        s = self.sessions.get(sid)
        if s is None:
            return self.wrap(None, 0x13, bytes([tag, 0x02, 0, 0, 0, 0, 0, 0]))
        rm, role, ulen = p[8:24], p[24], p[27]
        name = p[28:28 + ulen]
        if name != self.user:
            self.log("rakp1 unauthorized name")
            return self.wrap(None, 0x13, bytes([tag, 0x0D, 0, 0]) + struct.pack("<I", s["console_sid"]))
        rc = os.urandom(16)
        s.update(rm=rm, rc=rc, role=role, name=name)
        h = SUITES[s["suite"]][3]
        code = mac(h, self.key, struct.pack("<II", s["console_sid"], sid) + rm + rc + self.guid + bytes([role, ulen]) + name)
        return self.wrap(None, 0x13, bytes([tag, 0, 0, 0]) + struct.pack("<I", s["console_sid"]) + rc + self.guid + code)

    def rakp3(self, p):
        tag, status, sid = p[0], p[1], struct.unpack("<I", p[4:8])[0]
        s = self.sessions.get(sid)
        if s is None or "rc" not in s:
            return self.wrap(None, 0x15, bytes([tag, 0x02, 0, 0, 0, 0, 0, 0]))
        h, icv = SUITES[s["suite"]][3], SUITES[s["suite"]][4]
        name = s["name"]
        want = mac(h, self.key, s["rc"] + struct.pack("<I", s["console_sid"]) + bytes([s["role"], len(name)]) + name)
        if status != 0 or not hmac.compare_digest(want, p[8:8 + len(want)]):
            self.log("rakp3 invalid integrity check value")
            self.sessions.pop(sid, None)
            return self.wrap(None, 0x15, bytes([tag, 0x0F, 0, 0]) + struct.pack("<I", s["console_sid"]))
        sik = mac(h, self.key, s["rm"] + s["rc"] + bytes([s["role"], len(name)]) + name)
        s["k1"] = mac(h, sik, b"\x01" * 20)
        s["aes"] = mac(h, sik, b"\x02" * 20)[:16]
        value = mac(h, sik, s["rm"] + struct.pack("<I", sid) + self.guid)[:icv]
        self.log(f"session {sid:#x} active, suite {s['suite']}")
        return self.wrap(None, 0x15, bytes([tag, 0, 0, 0]) + struct.pack("<I", s["console_sid"]) + value)

    # ---- IPMI commands -------------------------------------------------------------------
    def command(self, s, m):
        if len(m) < 7:
            return None
        netfn, rq_addr, rq_seq, cmd, data = m[1] >> 2, m[3], m[4], m[5], m[6:-1]
        cc, out = self.execute(s, netfn, cmd, data)
        head = bytes([rq_addr, ((netfn | 1) << 2) | (m[4] & 3)])
        body = bytes([0x20, rq_seq, cmd, cc]) + out
        return head + bytes([cksum(head)]) + body + bytes([cksum(body)])

    def execute(self, s, netfn, cmd, data):
        if netfn == 0x06 and cmd == 0x38:  # Get Channel Authentication Capabilities
            return 0, bytes([0x01, 0x80 | 0x01, 0x14, 0x02, 0, 0, 0, 0])
        if netfn == 0x06 and cmd == 0x54:  # Get Channel Cipher Suites
            records = b"".join(bytes([0xC0, n, SUITES[n][0], 0x40 | SUITES[n][1], 0x80 | SUITES[n][2]]) for n in self.suites)
            index = data[2] & 0x3F if len(data) > 2 else 0
            return 0, bytes([0x01]) + records[index * 16:index * 16 + 16]
        if s is None:
            return 0xD4, b""  # everything else needs a session
        if netfn == 0x06 and cmd == 0x3B:  # Set Session Privilege Level
            return 0, bytes([data[0] or 4])
        if netfn == 0x06 and cmd == 0x3C:  # Close Session
            return 0, b""
        if netfn == 0x06 and cmd == 0x01:  # Get Device ID
            return 0, bytes([0x20, 0x01, 0x01, 0x00, 0x02, 0x00, 0, 0, 0, 0, 0])
        if netfn == 0x00 and cmd == 0x01:  # Get Chassis Status
            return 0, bytes([self.power, 0x00, 0x00, 0x00])
        if netfn == 0x00 and cmd == 0x02:  # Chassis Control
            action = data[0] & 0x0F
            self.log(f"chassis control {action}")
            if action == 0x00 or action == 0x05:
                self.power = 0
            elif action in (0x01, 0x02, 0x03):
                self.power = 1
            else:
                return 0xCC, b""
            self.save()
            return 0, b""
        if netfn == 0x00 and cmd == 0x08:  # Set System Boot Options
            param = data[0] & 0x7F
            if param == 5 and len(data) >= 3:
                dev = {0x04: "pxe", 0x08: "disk"}.get(data[2] & 0x3C, "other")
                self.boot = " ".join([dev, "persistent" if data[1] & 0x40 else "once", "efi" if data[1] & 0x20 else "legacy"])
                self.boot_flags = bytes(data[1:6]).ljust(5, b"\0")
                self.log(f"boot {self.boot}")
                self.save()
            return 0, b""
        if netfn == 0x00 and cmd == 0x09:  # Get System Boot Options
            flags = getattr(self, "boot_flags", b"\0" * 5)
            return 0, bytes([0x01, data[0] & 0x7F]) + flags
        self.log(f"unsupported netfn {netfn:#x} cmd {cmd:#x}")
        return 0xC1, b""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--user", default="admin")
    ap.add_argument("--suites", default="17,3")
    ap.add_argument("--drop-every", type=int, default=0)
    ap.add_argument("--lose-reset-reply", action="store_true")
    ap.add_argument("--state-dir")
    ap.add_argument("--bmcs", type=int, default=1)
    ap.add_argument("--trace", help="append every datagram in and out, in hex, to this file")
    args = ap.parse_args()
    password = os.environ.get("IPMI_BMC_PASSWORD", "")
    sel = selectors.DefaultSelector()
    first = None
    ports = []
    for i in range(args.bmcs):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", args.port + i if args.port else 0))
        sock.setblocking(False)
        ports.append(sock.getsockname()[1])
        first = first or ports[-1]
        sel.register(sock, selectors.EVENT_READ, Bmc(args, password, args.state_dir if args.bmcs == 1 else None))
    if args.state_dir and args.bmcs > 1:
        os.makedirs(args.state_dir, exist_ok=True)
        with open(os.path.join(args.state_dir, "ports"), "w") as f:
            f.write("\n".join(map(str, ports)) + "\n")
    print(f"ready {first}", flush=True)
    received = 0
    counter = os.path.join(args.state_dir, "received") if args.state_dir else None
    while True:
        events = sel.select()
        for key, _ in events:
            while True:
                try:
                    pkt, addr = key.fileobj.recvfrom(2048)
                except BlockingIOError:
                    break
                received += 1
                if args.drop_every and received % args.drop_every == 0:
                    continue
                try:
                    out = key.data.handle(pkt)
                except (IndexError, struct.error, ValueError) as e:
                    key.data.log(f"malformed packet: {e}")
                    out = None
                if args.trace:
                    with open(args.trace, "a") as f:
                        f.write(f"in {pkt.hex()}\nout {out.hex() if out else '-'}\n")
                if out:
                    key.fileobj.sendto(out, addr)
        # Counted per batch, not per datagram: a file write each would dominate a benchmark.
        # Replaced atomically: a reader between a truncate and a write would see no number.
        if counter:
            with open(counter + ".new", "w") as f:
                f.write(f"{received}\n")
            os.replace(counter + ".new", counter)


if __name__ == "__main__":
    sys.exit(main())
