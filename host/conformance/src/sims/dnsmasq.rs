//! A foreground dnsmasq serving DHCP on the lab bridge of a namespace, reading reservations from
//! the hosts dir the netboot plugin writes. `ip netns exec` execs it, so the child's PID is
//! dnsmasq's: that PID is what `service.reload` signals and what drop kills.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::Error;

pub struct Dnsmasq {
    child: Child,
    log: PathBuf,
}

/// The lines the daemon's supervised dnsmasq uses that matter here (host/src/netboot.rs).
fn config(hostsdir: &Path, leasefile: &Path) -> String {
    format!(
        "port=0\ninterface=br0\nbind-interfaces\nexcept-interface=lo\n\
         dhcp-range=10.99.0.100,10.99.0.199,255.255.255.0,1h\ndhcp-authoritative\n\
         dhcp-leasefile={}\npid-file=\nlog-dhcp\nlog-facility=-\ndhcp-hostsdir={}\nno-ping\n",
        leasefile.display(),
        hostsdir.display()
    )
}

impl Dnsmasq {
    pub fn start(netns: &str, dir: &Path, hostsdir: &Path) -> Result<Dnsmasq, Error> {
        super::which("dnsmasq").ok_or(Error::MissingTool { tool: "dnsmasq".into(), kind: "netboot", hint: "apt install dnsmasq-base" })?;
        super::which("busybox").ok_or(Error::MissingTool {
            tool: "busybox".into(),
            kind: "netboot",
            hint: "apt install busybox (its udhcpc is the DHCP client)",
        })?;
        let conf = dir.join("dnsmasq.conf");
        std::fs::write(&conf, config(hostsdir, &dir.join("dnsmasq.leases")))
            .map_err(|e| Error::Setup(format!("dnsmasq files in {}: {e}", dir.display())))?;
        Dnsmasq::run(netns, &conf, dir.join("dnsmasq.log"))
    }

    /// dnsmasq with the config file `conf` in `netns`, logging to `log`; returns once it serves DHCP.
    pub fn run(netns: &str, conf: &Path, log: PathBuf) -> Result<Dnsmasq, Error> {
        let io = |e: std::io::Error| Error::Setup(format!("dnsmasq log {}: {e}", log.display()));
        let out = std::fs::File::create(&log).map_err(io)?;
        let child = Command::new("ip")
            .args(["netns", "exec", netns, "dnsmasq", "--keep-in-foreground"])
            .arg(format!("--conf-file={}", conf.display()))
            .stdin(Stdio::null())
            .stdout(out.try_clone().map_err(io)?)
            .stderr(out)
            .spawn()
            .map_err(|source| Error::Start { what: "dnsmasq".into(), source })?;
        let mut d = Dnsmasq { child, log };
        d.wait_log("DHCP, IP range", Duration::from_secs(10)).map_err(|detail| Error::NotReady { what: "dnsmasq".into(), detail })?;
        Ok(d)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn wait_log(&mut self, needle: &str, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        while !self.log().contains(needle) {
            if !self.alive() {
                return Err(format!("dnsmasq exited: {}", self.log()));
            }
            if Instant::now() > deadline {
                return Err(format!("no {needle:?} in the dnsmasq log within {within:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
