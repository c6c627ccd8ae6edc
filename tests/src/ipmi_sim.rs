//! OpenIPMI's `ipmi_sim` as a BMC on a free loopback UDP port, with the lab's chassis-control hook
//! recording power and boot device in a state dir. The launcher is the conformance suite's
//! (`metalhost_conformance::sims`): one way to start a BMC for `plugin test` and for these tests.
//! Stopped by PID on drop, with whatever its hook started.

use std::ops::{Deref, DerefMut};

use metalhost_conformance::sims::ipmi_sim as sim;

/// A UDP port nobody is bound to right now.
pub fn free_udp_port() -> u16 {
    sim::free_udp_port().expect("probe a free udp port")
}

pub struct IpmiSim {
    inner: sim::IpmiSim,
    pub username: String,
    pub password: String,
}

impl IpmiSim {
    /// A BMC with one admin user (each sim gets a fresh state dir, so this is the user it has).
    pub fn start(username: &str, password: &str) -> IpmiSim {
        let inner = sim::IpmiSim::start(username, password).unwrap_or_else(|e| panic!("{e}"));
        IpmiSim { inner, username: username.to_owned(), password: password.to_owned() }
    }

    /// A BMC whose Serial over LAN reaches a raw TCP console at `127.0.0.1:sol_port`.
    pub fn start_with_sol(username: &str, password: &str, sol_port: u16) -> IpmiSim {
        let inner = sim::IpmiSim::start_with_sol(username, password, Some(sol_port)).unwrap_or_else(|e| panic!("{e}"));
        IpmiSim { inner, username: username.to_owned(), password: password.to_owned() }
    }

    /// Installs the program the hook runs, detached, on power-on (with the boot device as $1).
    pub fn on_power_on(&self, script: &str) {
        self.inner.on_power_on(script).expect("write on-power-on");
    }
}

impl Deref for IpmiSim {
    type Target = sim::IpmiSim;
    fn deref(&self) -> &sim::IpmiSim {
        &self.inner
    }
}

impl DerefMut for IpmiSim {
    fn deref_mut(&mut self) -> &mut sim::IpmiSim {
        &mut self.inner
    }
}
