//! OpenIPMI's `ipmi_sim` as a BMC on a free loopback UDP port, with the lab's chassis-control hook
//! recording power and boot device in a state dir. Stopped by PID on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::paths;

pub struct IpmiSim {
    child: Child,
    pub port: u16,
    pub username: String,
    pub password: String,
    dir: tempfile::TempDir,
}

/// A UDP port nobody is bound to right now.
pub fn free_udp_port() -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    socket.local_addr().expect("addr").port()
}

fn udp_bound(port: u16) -> bool {
    let needle = format!(":{port:04X} ");
    // thread-self: a test thread may have entered a lab netns that the process's main thread is not in.
    std::fs::read_to_string("/proc/thread-self/net/udp").map(|t| t.lines().any(|l| l.contains(&needle))).unwrap_or(false)
}

/// How to start a simulated BMC. Each sim gets a fresh state dir, so these users are the ones it
/// has (ipmi_sim ignores lan.conf users once its state dir holds persisted ones).
#[derive(Debug, Clone)]
pub struct IpmiSimOptions {
    pub username: String,
    pub password: String,
}

impl Default for IpmiSimOptions {
    fn default() -> IpmiSimOptions {
        IpmiSimOptions { username: "admin".into(), password: "password".into() }
    }
}

impl IpmiSim {
    /// A BMC with one admin user.
    pub fn start(username: &str, password: &str) -> IpmiSim {
        IpmiSim::start_with(IpmiSimOptions { username: username.to_owned(), password: password.to_owned() })
    }

    pub fn start_with(opts: IpmiSimOptions) -> IpmiSim {
        let IpmiSimOptions { username, password } = opts;
        let dir = tempfile::tempdir().expect("tmp");
        let state = dir.path().join("state");
        std::fs::create_dir_all(&state).expect("state dir");
        std::fs::create_dir_all(dir.path().join("sim")).expect("sim dir");
        let hook = paths::workspace_root().join("tests/lab/chassis-control.sh");
        let port = free_udp_port();
        let lan = format!(
            "name \"testbmc\"\nset_working_mc 0x20\n  startlan 1\n    addr 127.0.0.1 {port}\n    priv_limit admin\n\
             \x20   allowed_auths_callback none md2 md5 straight\n    allowed_auths_user none md2 md5 straight\n\
             \x20   allowed_auths_operator none md2 md5 straight\n    allowed_auths_admin none md2 md5 straight\n\
             \x20   guid a123456789abcdefa123456789abcdef\n  endlan\n  chassis_control \"{} {} 0x20\"\n\
             \x20 user 2 true  \"{username}\" \"{password}\" admin 10 none md2 md5 straight\n",
            hook.display(),
            state.display()
        );
        std::fs::write(dir.path().join("lan.conf"), lan).expect("lan.conf");
        std::fs::write(
            dir.path().join("lab.emu"),
            "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\nsel_enable 0x20 1000 0x0a\nmc_enable 0x20\n",
        )
        .expect("emu");
        let log = std::fs::File::create(dir.path().join("ipmi_sim.log")).expect("log");
        let child = Command::new("ipmi_sim")
            .arg("-c")
            .arg(dir.path().join("lan.conf"))
            .arg("-f")
            .arg(dir.path().join("lab.emu"))
            .arg("-s")
            .arg(dir.path().join("sim"))
            .arg("-n")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("start ipmi_sim (apt install openipmi)");
        let sim = IpmiSim { child, port, username, password, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !udp_bound(port) {
            assert!(Instant::now() < deadline, "ipmi_sim did not bind udp port {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        sim
    }

    /// The PID of the `ipmi_sim` process.
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

    /// The boot device ipmi_sim handed the hook (`pxe`, `default` for disk, ...).
    pub fn boot_device(&self) -> Option<String> {
        self.read_state("bootdev")
    }

    /// Installs the program the hook runs, detached, on power-on (with the boot device as $1); the
    /// hook kills it on power-off and reset. Its output goes to `hook_log()`.
    pub fn on_power_on(&self, script: &str) {
        let path = self.state_dir().join("on-power-on");
        std::fs::write(&path, script).expect("write on-power-on");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod on-power-on");
    }

    pub fn hook_log(&self) -> String {
        std::fs::read_to_string(self.state_dir().join("child.log")).unwrap_or_default()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops whatever the hook started for this BMC.
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
