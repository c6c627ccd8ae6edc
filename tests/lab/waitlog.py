#!/usr/bin/env python3
"""Waits for marker strings to appear, in order of appearance, in a (serial console) log file.

usage: waitlog.py LOG TIMEOUT_S [--t0 EPOCH] [--pid PID] [--fail TEXT]... MARKER...

Prints one line per marker when it first appears: "<seconds since t0> <marker>" (t0 defaults to
now; pass the time the VM was started to time a boot). Exit status: 0 all markers seen, 1 timeout,
2 a --fail text appeared, 3 the --pid process ended before all markers were seen. It polls the file
every 50 ms, so it needs no cooperation from the writer (qemu -serial file:LOG).
"""
import os
import sys
import time


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip(), file=sys.stderr)
        return 64
    log, timeout = argv[1], float(argv[2])
    rest = argv[3:]
    t0, pid, fails, marks = time.time(), None, [], []
    while rest:
        arg = rest.pop(0)
        if arg == "--t0":
            t0 = float(rest.pop(0))
        elif arg == "--pid":
            pid = int(rest.pop(0))
        elif arg == "--fail":
            fails.append(rest.pop(0))
        else:
            marks.append(arg)
    seen = set()
    deadline = time.time() + timeout

    def scan():
        try:
            with open(log, "rb") as f:
                text = f.read().decode("latin1")
        except FileNotFoundError:
            text = ""
        for m in marks:
            if m not in seen and m in text:
                seen.add(m)
                print(f"{time.time() - t0:7.2f}s  {m}", flush=True)
        return next((f for f in fails if f in text), None)

    while True:
        failed = scan()
        if failed is not None:
            print(f"{time.time() - t0:7.2f}s  FAILED: {failed!r} in {log}", flush=True)
            return 2
        if len(seen) == len(marks):
            return 0
        if pid is not None and not alive(pid):
            time.sleep(0.2)  # the last writes before exit
            scan()
            if len(seen) == len(marks):
                return 0
            print(f"{time.time() - t0:7.2f}s  process {pid} ended; missing {[m for m in marks if m not in seen]}", flush=True)
            return 3
        if time.time() > deadline:
            print(f"{time.time() - t0:7.2f}s  TIMEOUT; missing {[m for m in marks if m not in seen]}", flush=True)
            return 1
        time.sleep(0.05)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of someone else still "exists"; /proc tells us it is dead.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main(sys.argv))
