//! A real PostgreSQL server (Debian's PostgreSQL 15) for the tests that run the store on it.
//!
//! One server per test process, started on first use: `initdb` refuses root, so the cluster lives
//! in a temp dir owned by the `postgres` user and the server runs as that user (runuser). Local
//! (unix socket) connections are trusted, so the harness creates databases with `psql`; the
//! daemons connect over loopback TCP with a password (scram-sha-256), from a password file.
//!
//! The server speaks TLS (issue 31) with a certificate for 127.0.0.1 from a CA made here, and
//! daemons connect with `database_ca_file` naming that CA: every PostgreSQL suite runs over
//! verified TLS. [`PgServer::start_plain`] starts one without TLS, for the test of a refusal.
//!
//! The server is started under a small shell that stops it (fast shutdown) when the test process
//! exits and its stdin closes, so a failing or aborted test run leaves no server behind.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::fake_switch::free_tcp_port;

/// `METALHOST_TEST_DATABASE=postgres` runs the daemons of a test binary on PostgreSQL.
pub fn requested() -> bool {
    std::env::var("METALHOST_TEST_DATABASE").is_ok_and(|v| v == "postgres")
}

const BIN: &str = "/usr/lib/postgresql/15/bin";
const PASSWORD: &str = "pg-test-password-not-a-secret";

pub struct PgServer {
    pub port: u16,
    socket_dir: PathBuf,
    /// Where the password file for daemons is.
    password_file: PathBuf,
    /// The CA that signed the server's certificate (None: the server has no TLS).
    pub ca_file: Option<PathBuf>,
    /// The watcher shell; its stdin is held open for the life of the process.
    _watcher: Child,
    _dir: tempfile::TempDir,
}

static SERVER: OnceLock<PgServer> = OnceLock::new();
static NEXT_DB: AtomicUsize = AtomicUsize::new(0);

impl PgServer {
    /// The process's server, started on first use.
    pub fn shared() -> &'static PgServer {
        SERVER.get_or_init(|| PgServer::start(true))
    }

    /// A server of the caller's own that offers no TLS; stopped when dropped.
    pub fn start_plain() -> PgServer {
        PgServer::start(false)
    }

    fn start(tls: bool) -> PgServer {
        let dir = tempfile::Builder::new().prefix("metalhost-pg").tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let socket_dir = dir.path().join("socket");
        std::fs::create_dir_all(&socket_dir).expect("socket dir");
        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, format!("{PASSWORD}\n")).expect("pwfile");
        let password_file = dir.path().join("daemon-password");
        std::fs::write(&password_file, format!("{PASSWORD}\n")).expect("password file");
        let ca_file = tls.then(|| make_certificates(dir.path()));
        // The postgres user must reach its dirs: the temp dir is 0700 root by default.
        chown_postgres(dir.path());
        let status = Command::new("runuser")
            .args(["-u", "postgres", "--", &format!("{BIN}/initdb"), "-D"])
            .arg(&data)
            .args(["--auth-local=trust", "--auth-host=scram-sha-256", "--username=postgres", "--encoding=UTF8", "--locale=C.UTF-8"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .stdout(Stdio::null())
            .status()
            .expect("run initdb");
        assert!(status.success(), "initdb failed");
        let port = free_tcp_port();
        let log = dir.path().join("postgres.log");
        let ssl = if tls {
            format!("-c ssl=on -c ssl_cert_file='{0}/server.crt' -c ssl_key_file='{0}/server.key'", dir.path().display())
        } else {
            "-c ssl=off".to_owned()
        };
        let server = format!(
            "{BIN}/postgres -D '{}' -p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{}' -c max_connections=200 -c fsync=off {ssl}",
            data.display(),
            socket_dir.display()
        );
        // Stops the server (SIGINT: fast shutdown) when our stdin closes, i.e. when the test process ends.
        // Then removes the cluster (the temp dir is never dropped: the server lives in a static).
        let watcher_script = format!(
            "{server} >>'{}' 2>&1 & pid=$!; cat >/dev/null; kill -INT $pid; wait $pid; rm -rf '{}'/* '{}'",
            log.display(),
            dir.path().display(),
            dir.path().display()
        );
        let watcher = Command::new("runuser")
            .args(["-u", "postgres", "--", "sh", "-c", &watcher_script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start postgres");
        let server = PgServer { port, socket_dir, password_file, ca_file, _watcher: watcher, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !server.psql("postgres", "SELECT 1").is_ok_and(|out| out.trim() == "1") {
            assert!(Instant::now() < deadline, "postgres did not start; log:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    /// Runs SQL with psql as the superuser over the unix socket; returns the unaligned output.
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(format!("{BIN}/psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-U", "postgres", "-h"])
            .arg(&self.socket_dir)
            .args(["-p", &self.port.to_string(), "-d", database, "-c", sql])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// `database` as pg_dump writes it: every table's rows as text.
    pub fn dump(&self, database: &str) -> Result<Vec<u8>, String> {
        let out = Command::new(format!("{BIN}/pg_dump"))
            .args(["-U", "postgres", "-h"])
            .arg(&self.socket_dir)
            .args(["-p", &self.port.to_string(), "-d", database])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() { Ok(out.stdout) } else { Err(String::from_utf8_lossy(&out.stderr).into_owned()) }
    }

    /// A new, empty database; returns its name.
    pub fn create_database(&self) -> String {
        let name = format!("metalhost_{}_{}", std::process::id(), NEXT_DB.fetch_add(1, Ordering::Relaxed));
        self.psql("postgres", &format!("CREATE DATABASE {name}")).expect("create database");
        name
    }

    /// The URL daemons use for `database` (no password: that is in [`Self::password_file`]).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn password_file(&self) -> &Path {
        &self.password_file
    }

    /// The config lines that put a daemon on `database` of this server.
    pub fn database_config(&self, database: &str) -> String {
        let ca = self.ca_file.as_ref().map(|ca| format!("database_ca_file = \"{}\"\n", ca.display())).unwrap_or_default();
        format!("database = \"{}\"\ndatabase_password_file = \"{}\"\n{ca}", self.url(database), self.password_file.display())
    }

    /// Ends every connection to `database` but the caller's: a daemon cut off from its pool.
    pub fn cut_connections(&self, database: &str) -> usize {
        let out = self
            .psql("postgres", &format!("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{database}'"))
            .expect("terminate");
        out.trim().parse().unwrap_or(0)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // Closing the watcher's stdin stops the server.
        if let Some(mut stdin) = self._watcher.stdin.take() {
            let _ = stdin.flush();
        }
        let _ = self._watcher.wait();
    }
}

/// A CA and a server certificate for 127.0.0.1 from it, as `ca.pem`, `server.crt` and
/// `server.key` (0600, as PostgreSQL requires) in `dir`; returns the CA's path.
fn make_certificates(dir: &Path) -> PathBuf {
    let (ca, ca_key) = crate::certs::ca("metalhost test PostgreSQL CA");
    let (cert, key) = crate::certs::server(&ca_key, "metalhost test PostgreSQL CA", &["127.0.0.1", "localhost"], false);
    std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write ca.pem");
    std::fs::write(dir.join("server.crt"), cert.pem()).expect("write server.crt");
    std::fs::write(dir.join("server.key"), key.serialize_pem()).expect("write server.key");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("server.key"), std::fs::Permissions::from_mode(0o600)).expect("chmod server.key");
    dir.join("ca.pem")
}

fn chown_postgres(path: &Path) {
    let status = Command::new("chown").args(["-R", "postgres:postgres"]).arg(path).status().expect("chown");
    assert!(status.success(), "chown {} to postgres", path.display());
}
