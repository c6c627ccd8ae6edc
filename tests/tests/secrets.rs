//! Passwords sealed at rest: a copy of the database, WAL included, without the key reveals no BMC or
//! switch password; an old database with passwords in clear is sealed at start; the daemon refuses
//! a missing or wrong key instead of losing the passwords.

use std::path::Path;
use std::process::Command;

use metalhost_tests::daemon::{Daemon, node_body, switch_body};
use metalhost_tests::paths::host_binary;

const BMC_PASSWORD: &str = "bmc-pw-7c1e5a90d3";
const SWITCH_PASSWORD: &str = "switch-pw-2b8f6e41aa";
const OLD_PASSWORD: &str = "plain-old-pw-51d2c7";

/// Everything a thief with a copy of the data dir could read: the database file, its WAL, and
/// what `sqlite3 .dump` prints of it (run on a copy so the original is left as it was).
fn readable_without_key(data: &Path) -> String {
    let mut all = Vec::new();
    for name in ["metalhost.db", "metalhost.db-wal", "metalhost.db-shm"] {
        if let Ok(bytes) = std::fs::read(data.join(name)) {
            all.extend(bytes);
        }
    }
    let copy = tempfile::tempdir().expect("tmp");
    for name in ["metalhost.db", "metalhost.db-wal"] {
        if data.join(name).exists() {
            std::fs::copy(data.join(name), copy.path().join(name)).expect("copy");
        }
    }
    let dump = Command::new("sqlite3").arg(copy.path().join("metalhost.db")).arg(".dump").output().expect("run sqlite3");
    assert!(dump.status.success(), "sqlite3 .dump failed: {}", String::from_utf8_lossy(&dump.stderr));
    assert!(String::from_utf8_lossy(&dump.stdout).contains("CREATE TABLE nodes"), "the dump should hold the schema");
    all.extend(dump.stdout);
    String::from_utf8_lossy(&all).into_owned()
}

async fn enrol(daemon: &Daemon) {
    let (status, switch) = daemon.post("/v1/switches", &switch_body("sw1", SWITCH_PASSWORD)).await;
    assert!(status.is_success(), "{switch}");
    let (status, node) = daemon.post("/v1/nodes", &node_body(1, switch["id"].as_i64().expect("id"), BMC_PASSWORD)).await;
    assert!(status.is_success(), "{node}");
    // A password change goes through the same sealing.
    let (status, node) = daemon.patch("/v1/nodes/node1", &serde_json::json!({ "bmc_password": format!("{BMC_PASSWORD}-2") })).await;
    assert!(status.is_success(), "{node}");
}

#[tokio::test]
async fn no_password_is_readable_from_the_database_wal_or_dump() {
    let mut daemon = Daemon::start();
    enrol(&daemon).await;
    // While the daemon runs (WAL not yet checkpointed) and after it stopped.
    for phase in ["running", "stopped"] {
        let text = readable_without_key(&daemon.data_dir);
        for secret in [BMC_PASSWORD, SWITCH_PASSWORD] {
            assert!(!text.contains(secret), "{secret} is readable in the {phase} daemon's database");
        }
        assert!(text.contains("sealed:v1:"), "the sealed values should be there ({phase})");
        daemon.stop();
    }
    let key = std::fs::metadata(daemon.data_dir.join("secrets.key")).expect("the key file was generated");
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&key.permissions()) & 0o777, 0o600);
}

#[tokio::test]
async fn an_old_database_with_clear_passwords_is_sealed_at_start() {
    let mut daemon = Daemon::start();
    enrol(&daemon).await;
    daemon.stop();
    // What a database written before sealing holds: the password in clear.
    let db = daemon.data_dir.join("metalhost.db");
    let conn = rusqlite::Connection::open(&db).expect("open");
    conn.execute("UPDATE nodes SET bmc_password = ?1", [OLD_PASSWORD]).expect("write clear password");
    conn.execute("UPDATE switches SET password = ?1", [OLD_PASSWORD]).expect("write clear password");
    drop(conn);
    assert!(readable_without_key(&daemon.data_dir).contains(OLD_PASSWORD), "the test must start from a clear password");

    daemon.spawn_again();
    let text = readable_without_key(&daemon.data_dir);
    assert!(!text.contains(OLD_PASSWORD), "the clear password survived the start (file, WAL or free pages)");
    // And the sealed value is still the password: the node's BMC login reads it back.
    let (status, node) = daemon.get("/v1/nodes/node1").await;
    assert!(status.is_success(), "{node}");
    assert!(daemon.log().contains("sealed passwords that were stored in clear"), "{}", daemon.log());
}

#[tokio::test]
async fn a_missing_or_wrong_key_stops_the_daemon_with_a_clear_error() {
    let mut daemon = Daemon::start();
    enrol(&daemon).await;
    daemon.stop();
    let key = daemon.data_dir.join("secrets.key");
    let saved = std::fs::read(&key).expect("key");

    std::fs::remove_file(&key).expect("remove key");
    let err = serve_error(&daemon.data_dir);
    assert!(err.contains("secrets key") && err.contains("is missing") && err.contains("restore it from your backup"), "{err}");
    assert!(!key.exists(), "a new key must not replace the lost one");

    std::fs::write(&key, format!("{}\n", "ab".repeat(32))).expect("write another key");
    let err = serve_error(&daemon.data_dir);
    assert!(err.contains("does not open the passwords"), "{err}");

    std::fs::write(&key, &saved).expect("restore");
    daemon.spawn_again();
    let (status, _) = daemon.get("/v1/nodes/node1").await;
    assert!(status.is_success(), "with the key restored the daemon serves again");
}

/// Runs `metalhost serve` on the data dir and returns what it printed when it refused to start.
fn serve_error(data: &Path) -> String {
    let log = tempfile::NamedTempFile::new().expect("tmp");
    let mut child = Command::new(host_binary("metalhost"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("METALHOST_TOKEN", metalhost_tests::daemon::TOKEN)
        .stdout(log.reopen().expect("log"))
        .stderr(log.reopen().expect("log"))
        .spawn()
        .expect("run metalhost serve");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the daemon started although it should refuse: {}", std::fs::read_to_string(log.path()).unwrap_or_default());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(!status.success());
    std::fs::read_to_string(log.path()).expect("read log")
}
