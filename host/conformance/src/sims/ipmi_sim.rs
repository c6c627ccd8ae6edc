//! OpenIPMI's `ipmi_sim` as a BMC on a free loopback UDP port. Its chassis-control hook (the
//! lab's `tests/lab/chassis-control.sh`, compiled in) records power and boot device in a state dir.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::Error;

const HOOK: &str = include_str!("../../../../tests/lab/chassis-control.sh");

pub struct IpmiSim {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
    program: PathBuf,
}

/// Runs `ipmi_sim` on the config, emulation file and state in `dir`, logging to `dir/ipmi_sim.log`.
fn spawn(program: &Path, dir: &Path) -> Result<Child, Error> {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("ipmi_sim.log")).map_err(|e| setup("log", e))?;
    Command::new(program)
        .arg("-c")
        .arg(dir.join("lan.conf"))
        .arg("-f")
        .arg(dir.join("lab.emu"))
        .arg("-s")
        .arg(dir.join("sim"))
        .arg("-n")
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| setup("log", e))?)
        .stderr(log)
        .spawn()
        .map_err(|source| Error::Start { what: "ipmi_sim".into(), source })
}

/// A UDP port nobody is bound to right now.
pub fn free_udp_port() -> Result<u16, Error> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| Error::Setup(format!("probe a free udp port: {e}")))?;
    socket.local_addr().map(|a| a.port()).map_err(|e| Error::Setup(format!("probe a free udp port: {e}")))
}

fn udp_bound(port: u16) -> bool {
    let needle = format!(":{port:04X} ");
    std::fs::read_to_string("/proc/thread-self/net/udp").map(|t| t.lines().any(|l| l.contains(&needle))).unwrap_or(false)
}

fn setup(what: &str, e: std::io::Error) -> Error {
    Error::Setup(format!("ipmi_sim {what}: {e}"))
}

impl IpmiSim {
    /// A BMC with one admin user; `ipmi_sim` must be on PATH (Debian: `apt install openipmi`).
    pub fn start(username: &str, password: &str) -> Result<IpmiSim, Error> {
        IpmiSim::start_with_sol(username, password, None)
    }

    /// As [`IpmiSim::start`], with Serial over LAN bridged to a raw TCP console at
    /// `127.0.0.1:sol_port` (a QEMU `-serial` socket, say). ipmi_sim connects when SOL is first
    /// activated and then keeps reconnecting (about every 10 s) whenever the connection drops.
    pub fn start_with_sol(username: &str, password: &str, sol_port: Option<u16>) -> Result<IpmiSim, Error> {
        let program = super::which("ipmi_sim").ok_or(Error::MissingTool { tool: "ipmi_sim".into(), kind: "power", hint: "apt install openipmi" })?;
        let dir = tempfile::tempdir().map_err(|e| setup("dir", e))?;
        let state = dir.path().join("state");
        std::fs::create_dir_all(&state).map_err(|e| setup("state dir", e))?;
        std::fs::create_dir_all(dir.path().join("sim")).map_err(|e| setup("sim dir", e))?;
        let hook = dir.path().join("chassis-control.sh");
        std::fs::write(&hook, HOOK).map_err(|e| setup("hook", e))?;
        std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).map_err(|e| setup("hook", e))?;
        let port = free_udp_port()?;
        let sol = sol_port.map(|p| format!("  sol \"tcp:127.0.0.1:{p}\" 115200\n")).unwrap_or_default();
        // The test password lives in lan.conf (0600 in a private temp dir), not on ipmi_sim's argv.
        let lan = format!(
            "name \"conformance\"\nset_working_mc 0x20\n  startlan 1\n    addr 127.0.0.1 {port}\n    priv_limit admin\n\
             \x20   allowed_auths_callback none md2 md5 straight\n    allowed_auths_user none md2 md5 straight\n\
             \x20   allowed_auths_operator none md2 md5 straight\n    allowed_auths_admin none md2 md5 straight\n\
             \x20   guid a123456789abcdefa123456789abcdef\n  endlan\n  chassis_control \"{} {} 0x20\"\n{sol}\
             \x20 user 2 true  \"{username}\" \"{password}\" admin 10 none md2 md5 straight\n",
            hook.display(),
            state.display()
        );
        std::fs::write(dir.path().join("lan.conf"), lan).map_err(|e| setup("lan.conf", e))?;
        std::fs::write(
            dir.path().join("lab.emu"),
            "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\nsel_enable 0x20 1000 0x0a\nmc_enable 0x20\n",
        )
        .map_err(|e| setup("emu file", e))?;
        let child = spawn(&program, dir.path())?;
        let sim = IpmiSim { child, port, dir, program };
        sim.wait_bound()?;
        Ok(sim)
    }

    fn wait_bound(&self) -> Result<(), Error> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !udp_bound(self.port) {
            if Instant::now() > deadline {
                return Err(Error::NotReady {
                    what: "ipmi_sim".into(),
                    detail: format!("udp port {} not bound within 10 s: {}", self.port, self.log()),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Kills the BMC process and nothing else: what its hook started keeps running and its state
    /// dir stays, as when a real BMC stops answering. `start_again` brings it back on the same port.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the BMC again after `stop`, with the same config, state and UDP port.
    pub fn start_again(&mut self) -> Result<(), Error> {
        self.child = spawn(&self.program, self.dir.path())?;
        self.wait_bound()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where the chassis hook keeps `power`, `bootdev`, `calls.log` and the power-on child's files.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn read_state(&self, file: &str) -> Option<String> {
        std::fs::read_to_string(self.state_dir().join(file)).ok().map(|s| s.trim().to_owned())
    }

    /// The power state the chassis hook recorded: true when on.
    pub fn powered(&self) -> bool {
        self.read_state("power").as_deref() == Some("1")
    }

    /// The boot device ipmi_sim handed the hook (`pxe`, `default` for disk).
    pub fn boot_device(&self) -> Option<String> {
        self.read_state("bootdev")
    }

    /// Every chassis call the hook saw.
    pub fn calls(&self) -> String {
        self.read_state("calls.log").unwrap_or_default()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("ipmi_sim.log")).unwrap_or_default()
    }

    /// Installs the program the hook runs, detached, on power-on (with the boot device as $1): an
    /// agent process or a VM. The hook kills it on power-off and reset; its output goes to `hook_log()`.
    pub fn on_power_on(&self, script: &str) -> std::io::Result<()> {
        let path = self.state_dir().join("on-power-on");
        std::fs::write(&path, script)?;
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
    }

    pub fn hook_log(&self) -> String {
        std::fs::read_to_string(self.state_dir().join("child.log")).unwrap_or_default()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops whatever the hook started for this BMC (its process group, then the process).
    fn stop_child(&self) {
        if let Some(pid) = self.read_state("child.pid") {
            let _ = Command::new("kill").args(["-TERM", "--", &format!("-{pid}")]).status();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
        }
    }
}

impl Drop for IpmiSim {
    fn drop(&mut self) {
        self.stop_child();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
