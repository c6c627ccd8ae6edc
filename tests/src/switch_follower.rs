//! The VM lab's switch made real on the wire: each tap is cabled to one port of the emulated
//! Juniper switch (fake-switches), and its frames go where that port's access VLAN says.
//!
//! The lab kernel has no VLAN-aware bridge (no `CONFIG_BRIDGE_VLAN_FILTERING`, no 802.1Q), so a
//! VLAN is a bridge of its own, as Linux did it before `vlan_filtering`: `br0` (10.99.0.1, where
//! the daemon, dnsmasq and the HTTP server live) is the provisioning VLAN, and any other VLAN `V`
//! is `brvV`, made on first use with no address. A tap is in the bridge of its port's VLAN and no
//! other, so two taps exchange frames exactly when their ports share a VLAN, and only taps on the
//! provisioning VLAN reach br0.
//!
//! The emulator is the source of truth, not the daemon's database: `tests/lab/nc_port_config.py
//! --watch` (the independent paramiko checker, one session kept open) reads the running config
//! every 200 ms and prints the ports' config whenever it changes; a thread applies it with `ip link
//! set TAP master BRIDGE`. A port with no VLAN is on the switch's default VLAN, which the lab makes
//! the provisioning one (a machine nobody configured a port for still netboots, as on a real
//! provisioning network). The checker is killed by PID on drop.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::fake_switch::FakeSwitch;
use crate::paths;

/// How often the emulator's running config is read.
pub const POLL_MS: u64 = 200;

/// The bridge that carries VLAN `vlan` when `home` (br0's) is `home_vlan`.
pub fn bridge_of(vlan: u16, home: &str, home_vlan: u16) -> String {
    if vlan == home_vlan { home.to_owned() } else { format!("brv{vlan}") }
}

#[derive(Default)]
struct Followed {
    /// tap → the VLAN it was last put on.
    applied: BTreeMap<String, u16>,
    /// How many times a tap was moved.
    moves: usize,
    errors: Vec<String>,
}

pub struct SwitchFollower {
    child: Child,
    state: Arc<Mutex<Followed>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SwitchFollower {
    /// Follows `switch` for each (switch port, tap) cable. Call it on a thread inside the lab
    /// netns (the checker and the reader thread are started in it). Returns once the switch's
    /// config was read and applied a first time.
    pub fn start(switch: &FakeSwitch, cables: &[(String, String)], home: &str, home_vlan: u16) -> SwitchFollower {
        let python = paths::workspace_root().join(".lab/venv/bin/python");
        let script = paths::workspace_root().join("tests/lab/nc_port_config.py");
        let mut child = Command::new(python)
            .arg(script)
            .args(["127.0.0.1", &switch.port.to_string(), &switch.username, "--watch", &POLL_MS.to_string()])
            .args(cables.iter().map(|(port, _)| port))
            .env("NC_PASSWORD", &switch.password)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run nc_port_config.py --watch");
        let stdout = child.stdout.take().expect("stdout");
        let state = Arc::new(Mutex::new(Followed::default()));
        let want = cables.len();
        let (cables, home, shared) = (cables.to_vec(), home.to_owned(), state.clone());
        // A thread inherits the netns of the thread that makes it: `ip` runs in the lab.
        let netns = std::fs::read_link("/proc/thread-self/ns/net").expect("this thread's netns");
        let thread = std::thread::Builder::new()
            .name("switch-follower".into())
            .spawn(move || {
                assert_eq!(std::fs::read_link("/proc/thread-self/ns/net").ok(), Some(netns), "the follower left the lab netns");
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { return };
                    let Ok(ports) = serde_json::from_str::<serde_json::Value>(&line) else {
                        shared.lock().expect("lock").errors.push(format!("not JSON from the checker: {line}"));
                        continue;
                    };
                    for (port, tap) in &cables {
                        let vlan = ports[port.as_str()]["members"]
                            .as_array()
                            .and_then(|m| m.first())
                            .and_then(|v| v.as_u64())
                            .and_then(|v| u16::try_from(v).ok())
                            .unwrap_or(home_vlan);
                        if shared.lock().expect("lock").applied.get(tap) == Some(&vlan) {
                            continue;
                        }
                        let result = put_on_vlan(tap, vlan, &home, home_vlan);
                        let mut followed = shared.lock().expect("lock");
                        match result {
                            Ok(()) => {
                                if followed.applied.insert(tap.clone(), vlan).is_some() {
                                    followed.moves += 1;
                                }
                            }
                            Err(e) => followed.errors.push(format!("{tap} ({port}) to VLAN {vlan}: {e}")),
                        }
                    }
                }
            })
            .expect("spawn the switch follower");
        let follower = SwitchFollower { child, state, thread: Some(thread) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while follower.applied().len() < want {
            assert!(follower.errors().is_empty(), "switch follower: {:?}", follower.errors());
            assert!(Instant::now() < deadline, "the switch follower did not read the switch within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        follower
    }

    /// tap → VLAN, as last applied.
    pub fn applied(&self) -> BTreeMap<String, u16> {
        self.state.lock().expect("lock").applied.clone()
    }

    /// How many times a tap was moved to another VLAN since the start.
    pub fn moves(&self) -> usize {
        self.state.lock().expect("lock").moves
    }

    /// What could not be applied.
    pub fn errors(&self) -> Vec<String> {
        self.state.lock().expect("lock").errors.clone()
    }
}

impl Drop for SwitchFollower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).stdin(Stdio::null()).output().map_err(|e| format!("ip: {e}"))?;
    if out.status.success() { Ok(()) } else { Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim())) }
}

/// Puts `tap` in the bridge of `vlan` (made when missing: no STP delay, no address, no IPv6
/// link-local either: the netns itself takes no part in a tenant VLAN).
fn put_on_vlan(tap: &str, vlan: u16, home: &str, home_vlan: u16) -> Result<(), String> {
    let bridge = bridge_of(vlan, home, home_vlan);
    if ip(&["link", "show", "dev", &bridge]).is_err() {
        ip(&["link", "add", &bridge, "type", "bridge", "forward_delay", "0", "stp_state", "0"])?;
        ip(&["link", "set", &bridge, "addrgenmode", "none"])?;
        ip(&["link", "set", &bridge, "up"])?;
    }
    ip(&["link", "set", tap, "master", &bridge])
}

/// Each tap's VLAN as the kernel has it (the bridge it is in), read with `ip -j link`: what frames
/// obey, whatever the follower believes.
pub fn tap_vlans(home: &str, home_vlan: u16) -> BTreeMap<String, u16> {
    let out = Command::new("ip").args(["-j", "link", "show"]).output().expect("ip -j link show");
    assert!(out.status.success(), "ip -j link show: {}", String::from_utf8_lossy(&out.stderr));
    let links: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip -j output");
    let mut vlans = BTreeMap::new();
    for link in links.as_array().into_iter().flatten() {
        let (Some(name), Some(master)) = (link["ifname"].as_str(), link["master"].as_str()) else { continue };
        if !name.starts_with("tap") {
            continue;
        }
        let vlan = if master == home { Some(home_vlan) } else { master.strip_prefix("brv").and_then(|v| v.parse().ok()) };
        if let Some(vlan) = vlan {
            vlans.insert(name.to_owned(), vlan);
        }
    }
    vlans
}
