//! A private network namespace with a bridge (`br0`, 10.99.0.1/24) for dnsmasq, and throwaway
//! client namespaces that DHCP through it with busybox `udhcpc`. Nothing is routed out, and each
//! namespace is deleted on drop, also when the suite fails.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::Error;

pub const BRIDGE_ADDR: &str = "10.99.0.1/24";

pub struct Netns {
    pub name: String,
}

fn ip(args: &[&str]) -> Result<(), Error> {
    let out = Command::new("ip").args(args).stdin(Stdio::null()).output().map_err(|source| Error::Start { what: "ip".into(), source })?;
    if out.status.success() { Ok(()) } else { Err(Error::Setup(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))) }
}

impl Netns {
    /// A new namespace; an existing one of that name belongs to someone else and is refused.
    pub fn create(name: &str) -> Result<Netns, Error> {
        let list = Command::new("ip").args(["netns", "list"]).output().map_err(|source| Error::Start { what: "ip netns list".into(), source })?;
        if String::from_utf8_lossy(&list.stdout).lines().any(|l| l.split_whitespace().next() == Some(name)) {
            return Err(Error::Setup(format!("network namespace {name} already exists (not ours to reuse)")));
        }
        ip(&["netns", "add", name])?;
        Ok(Netns { name: name.to_owned() })
    }

    /// A namespace holding the lab bridge dnsmasq serves.
    pub fn with_bridge(name: &str) -> Result<Netns, Error> {
        let ns = Netns::create(name)?;
        let n = ns.name.as_str();
        ip(&["-n", n, "link", "set", "lo", "up"])?;
        ip(&["-n", n, "link", "add", "br0", "type", "bridge"])?;
        // No STP forwarding delay: a port must forward the moment a client starts DHCP.
        ip(&["-n", n, "link", "set", "br0", "type", "bridge", "forward_delay", "0", "stp_state", "0"])?;
        ip(&["-n", n, "addr", "add", BRIDGE_ADDR, "dev", "br0"])?;
        ip(&["-n", n, "link", "set", "br0", "up"])?;
        Ok(ns)
    }

    /// DHCP as `mac` from a fresh client namespace cabled into this one's bridge; the address
    /// offered and acked, if any.
    pub fn dhcp_lease(&self, mac: &str) -> Result<Option<String>, Error> {
        // The bridge end of a deleted veth goes away asynchronously: a fresh name per probe.
        static PROBES: AtomicUsize = AtomicUsize::new(0);
        let n = PROBES.fetch_add(1, Ordering::SeqCst);
        let veth = format!("vct{n}");
        let client = Netns::create(&format!("{}c{n}", self.name))?;
        ip(&["link", "add", &veth, "netns", &self.name, "type", "veth", "peer", "name", "eth0", "netns", &client.name])?;
        ip(&["-n", &self.name, "link", "set", &veth, "master", "br0", "up"])?;
        ip(&["-n", &client.name, "link", "set", "eth0", "address", mac])?;
        ip(&["-n", &client.name, "link", "set", "eth0", "up"])?;
        let out = Command::new("ip")
            .args(["netns", "exec", &client.name, "busybox", "udhcpc", "-i", "eth0", "-q", "-f", "-n", "-t", "5", "-T", "1", "-s", "/bin/true"])
            .stdin(Stdio::null())
            .output()
            .map_err(|source| Error::Start { what: "busybox udhcpc".into(), source })?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        Ok(text.lines().find_map(|l| l.split("lease of ").nth(1)).and_then(|rest| rest.split_whitespace().next()).map(str::to_owned))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
}
