#!/usr/bin/env python3
"""fake-switches, made to release a session's locks when the session ends, as RFC 6241 section 7.5 requires.

The emulator keeps a datastore locked forever when the session holding the lock dies (a killed client,
a dropped connection), so any test that kills a client mid-change would find the switch locked for
good. This launcher wraps Base1_0.lock/unlock to remember which targets each session holds, gives
NetconfProtocol a connectionLost that unlocks them (and discards an abandoned candidate, as a real
server does when the lock on it is released without a commit), then runs the emulator's own main.
Each SSH connection gets its own NetconfProtocol (its __call__ returns self), so "session" is one object.
usage: the same arguments as fake-switches.
"""
import sys

import fake_switches.cmd.main
from fake_switches.netconf import first, resolve_source_name
from fake_switches.netconf.capabilities import Base1_0
from fake_switches.netconf.netconf_protocol import NetconfProtocol

_lock, _unlock = Base1_0.lock, Base1_0.unlock


def _target(request):
    return resolve_source_name(first(request.xpath("target"))[0].tag)


def lock(self, request):
    response = _lock(self, request)  # raises AlreadyLocked when another session holds it
    self.__dict__.setdefault("held", set()).add(_target(request))
    return response


def unlock(self, request):
    response = _unlock(self, request)
    self.__dict__.setdefault("held", set()).discard(_target(request))
    return response


def connection_lost(self, reason=None):
    for capability in self.capabilities:
        held = capability.__dict__.get("held", set())
        for target in sorted(held):
            print("session ended holding the %s lock: releasing it" % target, file=sys.stderr, flush=True)
            if target == "candidate":
                self.datastore.reset()
            self.datastore.unlock(target)
        held.clear()


Base1_0.lock = lock
Base1_0.unlock = unlock
NetconfProtocol.connectionLost = connection_lost

if __name__ == "__main__":
    sys.exit(fake_switches.cmd.main.main())
