//! sushy-emulator (sushy-tools, fake backend) as a Redfish BMC on a free loopback port: its own
//! state dir, a bcrypt htpasswd with one user, and TLS with a certificate from a CA made for it.
//! Stopped by PID on drop. Read back through its own Redfish API with `curl`, so checks do not
//! trust the plugin under test.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::sims::test_ca::{Issued, TestCa};

/// The one system the emulator has (the fake backend's default uuid, named here so tests can
/// also configure the plugin's `system-id`).
pub const SYSTEM_ID: &str = "27946b59-9e44-4fa7-8e91-f3527a1ef094";

pub struct Sushy {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
    /// The CA that signed the emulator's certificate.
    pub ca: TestCa,
    pub cert: Issued,
    username: String,
}

/// `$METALHOST_SUSHY_EMULATOR`, else the venv `scripts/setup` makes in this source tree, else PATH.
pub fn default_program() -> PathBuf {
    if let Some(path) = std::env::var_os("METALHOST_SUSHY_EMULATOR") {
        return PathBuf::from(path);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.lab/sushy/bin/sushy-emulator");
    if venv.is_file() { venv } else { PathBuf::from("sushy-emulator") }
}

fn setup(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Setup(format!("sushy-emulator {what}: {e}"))
}

impl Sushy {
    /// An emulator with one user, one system (off), HTTPS. `program` is `sushy-emulator`; its
    /// venv's python writes the bcrypt hash (reading the password on stdin, never argv).
    pub fn start(program: &Path, username: &str, password: &str) -> Result<Sushy, Error> {
        let program = if program.components().count() > 1 { Some(program.to_owned()) } else { super::which(&program.to_string_lossy()) };
        let program = program.filter(|p| p.is_file()).ok_or(Error::MissingTool {
            tool: "sushy-emulator".into(),
            kind: "power",
            hint: "run scripts/setup, or point --sushy-emulator / METALHOST_SUSHY_EMULATOR at it",
        })?;
        let dir = tempfile::tempdir().map_err(|e| setup("dir", e))?;
        let ca = TestCa::create(dir.path(), "bmc-ca")?;
        let cert = ca.issue("bmc", "127.0.0.1")?;
        let htpasswd = dir.path().join("htpasswd");
        write_htpasswd(&program, &htpasswd, username, password)?;
        std::fs::create_dir_all(dir.path().join("state")).map_err(|e| setup("state dir", e))?;
        let config = dir.path().join("emulator.conf");
        let text = format!(
            "SUSHY_EMULATOR_FAKE_DRIVER = True\nSUSHY_EMULATOR_STATE_DIR = {:?}\nSUSHY_EMULATOR_AUTH_FILE = {:?}\n\
             SUSHY_EMULATOR_SSL_CERT = {:?}\nSUSHY_EMULATOR_SSL_KEY = {:?}\n\
             SUSHY_EMULATOR_FAKE_SYSTEMS = [{{'uuid': '{SYSTEM_ID}', 'name': 'node-0', 'power_state': 'Off', 'external_notifier': False, \
             'nics': [{{'mac': '52:54:00:00:00:01', 'ip': '10.99.0.10'}}]}}]\n",
            dir.path().join("state").display().to_string(),
            htpasswd.display().to_string(),
            cert.cert.display().to_string(),
            cert.key.display().to_string(),
        );
        std::fs::write(&config, text).map_err(|e| setup("config", e))?;
        let mut last = String::new();
        // The probed port can be taken before the emulator binds it: then it exits; try another.
        for _ in 0..3 {
            let port = super::fake_switch::free_tcp_port()?;
            let log_path = dir.path().join("sushy.log");
            let log = std::fs::File::create(&log_path).map_err(|e| setup("log", e))?;
            let mut child = Command::new(&program)
                .arg("--config")
                .arg(&config)
                .args(["-i", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(log.try_clone().map_err(|e| setup("log", e))?)
                .stderr(log)
                .spawn()
                .map_err(|source| Error::Start { what: format!("sushy-emulator ({})", program.display()), source })?;
            match wait_listening(&mut child, port, Duration::from_secs(30)) {
                Ok(()) => return Ok(Sushy { child, port, dir, ca, cert, username: username.to_owned() }),
                Err(why) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last = format!("{why}: {}", std::fs::read_to_string(&log_path).unwrap_or_default());
                }
            }
        }
        Err(Error::NotReady { what: "sushy-emulator".into(), detail: last })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `https://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub fn system_path(&self) -> String {
        format!("/redfish/v1/Systems/{SYSTEM_ID}")
    }

    /// What the emulator printed so far (its request log, tracebacks).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sushy.log")).unwrap_or_default()
    }

    /// A dir that lives as long as the emulator, for the test's own files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// GET `path` through the emulator's own API with `curl`, trusting its CA. The credentials
    /// go to curl on stdin (`-K -`), not on its argv.
    pub fn get(&self, path: &str, password: &str) -> Result<serde_json::Value, Error> {
        let mut child = Command::new("curl")
            .args(["-sS", "--fail-with-body", "--max-time", "10", "--cacert"])
            .arg(&self.ca.cert)
            .args(["-K", "-"])
            .arg(format!("{}{path}", self.url()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| Error::Start { what: "curl".into(), source })?;
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write;
            let quoted = format!("{}:{}", self.username, password).replace('\\', "\\\\").replace('"', "\\\"");
            stdin.write_all(format!("user = \"{quoted}\"\n").as_bytes()).map_err(|e| setup("curl stdin", e))?;
        }
        let out = child.wait_with_output().map_err(|e| setup("curl", e))?;
        if !out.status.success() {
            return Err(Error::Setup(format!(
                "curl {path}: {} {}",
                String::from_utf8_lossy(&out.stderr).trim(),
                String::from_utf8_lossy(&out.stdout).trim()
            )));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| setup("answer", e))
    }

    /// The system as the emulator reports it.
    pub fn system(&self, password: &str) -> Result<serde_json::Value, Error> {
        self.get(&self.system_path(), password)
    }
}

fn wait_listening(child: &mut Child, port: u16, within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("sushy-emulator exited with {status}"));
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("nothing listens on port {port} after {within:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `user:bcrypt-hash` written by the emulator venv's python (bcrypt is one of sushy's
/// dependencies); the password travels on its stdin.
fn write_htpasswd(program: &Path, path: &Path, username: &str, password: &str) -> Result<(), Error> {
    let python = program.parent().map(|bin| bin.join("python3")).filter(|p| p.is_file()).unwrap_or_else(|| PathBuf::from("python3"));
    let script = "import bcrypt,sys\nu=sys.argv[1]\np=sys.stdin.buffer.read()\nopen(sys.argv[2],'w').write(u+':'+bcrypt.hashpw(p,bcrypt.gensalt(rounds=4)).decode()+'\\n')\n";
    let mut child = Command::new(&python)
        .args(["-c", script, username])
        .arg(path)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| Error::Start { what: format!("{} (bcrypt for the htpasswd)", python.display()), source })?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        stdin.write_all(password.as_bytes()).map_err(|e| setup("htpasswd", e))?;
    }
    let out = child.wait_with_output().map_err(|e| setup("htpasswd", e))?;
    if out.status.success() { Ok(()) } else { Err(setup("htpasswd", String::from_utf8_lossy(&out.stderr).trim())) }
}

impl Drop for Sushy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
