#!/usr/bin/env python3
"""The wire between a lab BMC's serial port and its VM's UART.

usage: serial_wire.py BMC_PORT VM_PORT

ipmi_sim's Serial over LAN connects to 127.0.0.1:BMC_PORT (`sol "tcp:..."` in lan.conf) and stays
connected: this end never goes away, as a real BMC's serial port stays wired to the host. The VM
side is QEMU's `-serial` socket on 127.0.0.1:VM_PORT (server, waiting for a client): a new QEMU
starts at every power cycle, and the wire connects to it within 50 ms, so QEMU starts at once and
nothing it prints is lost. Without it, ipmi_sim itself had to reconnect to each new QEMU, which it
does on a 10 s timer and, after some resets, not at all.

Bytes go both ways unchanged; what one side sends while the other is absent is dropped.
"""
import selectors
import socket
import sys
import time


def main():
    bmc_port, vm_port = int(sys.argv[1]), int(sys.argv[2])
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", bmc_port))
    listener.listen(4)
    listener.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, "listen")
    bmc = vm = None
    while True:
        if vm is None:
            try:
                vm = socket.create_connection(("127.0.0.1", vm_port), timeout=0.2)
                vm.setblocking(False)
                sel.register(vm, selectors.EVENT_READ, "vm")
            except OSError:
                vm = None
        for key, _ in sel.select(timeout=0.05 if vm is None else 1.0):
            if key.data == "listen":
                conn, _ = listener.accept()
                if bmc is not None:
                    sel.unregister(bmc)
                    bmc.close()
                bmc = conn
                bmc.setblocking(False)
                sel.register(bmc, selectors.EVENT_READ, "bmc")
                continue
            src = bmc if key.data == "bmc" else vm
            dst = vm if key.data == "bmc" else bmc
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                sel.unregister(src)
                src.close()
                if key.data == "bmc":
                    bmc = None
                else:
                    vm = None
                continue
            if dst is not None:
                try:
                    dst.setblocking(True)
                    dst.sendall(data)
                    dst.setblocking(False)
                except OSError:
                    pass
        if vm is None:
            time.sleep(0.05)


if __name__ == "__main__":
    main()
