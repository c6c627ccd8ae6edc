//! The store on PostgreSQL (issue 19): what only that engine raises. The shared suites (foundation,
//! operations, deploy, ...) run on it too, with METALHOST_TEST_DATABASE=postgres (scripts/test).

use std::process::Command;
use std::time::Duration;

use metalhost_tests::daemon::{Daemon, node_body, switch_body};
use metalhost_tests::paths;
use metalhost_tests::postgres::PgServer;
use reqwest::StatusCode;

const BMC_PASSWORD: &str = "pg-bmc-password-4711";
const SWITCH_PASSWORD: &str = "pg-switch-password-0815";

fn pg_daemon(server: &PgServer, database: &str) -> Daemon {
    Daemon::start_with(&server.database_config(database))
}

/// Passwords reach PostgreSQL sealed: a dump of the whole database holds neither.
#[tokio::test]
async fn passwords_reach_postgres_sealed() {
    let server = PgServer::shared();
    let db = server.create_database();
    let d = pg_daemon(server, &db);
    let (status, sw) = d.post("/v1/switches", &switch_body("sw1", SWITCH_PASSWORD)).await;
    assert_eq!(status, StatusCode::CREATED, "{sw}");
    let (status, node) = d.post("/v1/nodes", &node_body(1, sw["id"].as_i64().expect("id"), BMC_PASSWORD)).await;
    assert_eq!(status, StatusCode::CREATED, "{node}");
    let dump = Command::new("/usr/lib/postgresql/15/bin/pg_dump")
        .args(["-U", "postgres", "-h", "127.0.0.1", "-p", &server.port.to_string(), &db])
        .env("PGPASSFILE", "/dev/null")
        .env("PGPASSWORD", std::fs::read_to_string(server.password_file()).expect("pw").trim())
        .output()
        .expect("pg_dump");
    assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stderr));
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(dump.contains("sealed:v1:"), "the dump holds the sealed values");
    assert!(!dump.contains(BMC_PASSWORD) && !dump.contains(SWITCH_PASSWORD), "a password is in the dump in clear");
    // And the daemon still opens them: the power driver would get the real password.
    assert!(!d.log().contains(BMC_PASSWORD));
}

/// Three daemons started at once on one new database: the migrations run once (advisory lock),
/// all three serve, and they share one secrets key file.
#[tokio::test]
async fn daemons_starting_together_migrate_once() {
    let server = PgServer::shared();
    let db = server.create_database();
    let key_dir = tempfile::tempdir().expect("tmp");
    let key = key_dir.path().join("secrets.key");
    let config = format!("{}[secrets]\nkey_file = \"{}\"\n", server.database_config(&db), key.display());
    let daemons: Vec<Daemon> = std::thread::scope(|s| {
        let started: Vec<_> = (0..3).map(|_| s.spawn(|| Daemon::start_with(&config))).collect();
        started.into_iter().map(|h| h.join().expect("daemon")).collect()
    });
    let version = server.psql(&db, "SELECT version FROM schema_version").expect("version");
    assert_eq!(version.lines().count(), 1, "one version row: {version}");
    let applied: usize = daemons.iter().map(|d| d.log().matches("applied database migration").count()).sum();
    let expected: usize = version.trim().parse().expect("number");
    assert_eq!(applied, expected, "each migration applied exactly once across the three daemons");
    // A switch added through one daemon is seen by the others, password and all.
    let (status, sw) = daemons[0].post("/v1/switches", &switch_body("sw1", SWITCH_PASSWORD)).await;
    assert_eq!(status, StatusCode::CREATED, "{sw}");
    for d in &daemons[1..] {
        let (status, list) = d.get("/v1/switches").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    }
}

/// PostgreSQL ends the daemon's session: the call that finds it gone fails with a clear error,
/// the next one works on a fresh session, and nothing written before is lost.
#[tokio::test]
async fn a_killed_session_is_reopened_and_nothing_is_lost() {
    let server = PgServer::shared();
    let db = server.create_database();
    let d = pg_daemon(server, &db);
    let (status, sw) = d.post("/v1/switches", &switch_body("sw1", SWITCH_PASSWORD)).await;
    assert_eq!(status, StatusCode::CREATED, "{sw}");
    assert!(server.cut_connections(&db) >= 1, "the daemon had a session");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.push(d.get("/v1/switches").await);
    }
    let (status, last) = answers.last().cloned().expect("answers");
    assert_eq!(status, StatusCode::OK, "{answers:?}");
    assert_eq!(last.as_array().map(Vec::len), Some(1), "{last}");
    for (status, body) in &answers {
        assert!(status.is_success() || *status == StatusCode::SERVICE_UNAVAILABLE, "a lost session is 503, to retry: {body}");
        assert!(status.is_success() || body["error"]["message"].as_str().is_some_and(|m| m.contains("database is unavailable")), "{body}");
    }
    assert!(d.log().contains("connected again"), "the reconnect is logged");
}

/// A password inside the URL is refused before anything starts, and not echoed.
#[test]
fn a_password_in_the_database_url_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("metalhost.toml");
    std::fs::write(
        &config,
        format!("listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\ndatabase = \"postgres://u:hunter2secret@127.0.0.1:1/x\"\n", dir.path().display()),
    )
    .expect("config");
    let out = Command::new(paths::host_binary("metalhost")).args(["serve", "--config"]).arg(&config).output().expect("run");
    assert!(!out.status.success());
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("database_password_file"), "{text}");
    assert!(!text.contains("hunter2secret"), "the password is echoed: {text}");
    // An unknown scheme is named.
    std::fs::write(&config, format!("data_dir = \"{}\"\ndatabase = \"mysql://x/y\"\n", dir.path().display())).expect("config");
    let out = Command::new(paths::host_binary("metalhost")).args(["serve", "--config"]).arg(&config).output().expect("run");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && text.contains("unknown scheme \"mysql\""), "{text}");
}

/// The daemon on PostgreSQL over TLS (issue 31): with `database_ca_file`, every session the store
/// opens is TLS (the server's own view, `pg_stat_ssl`), verified against that CA and the host.
#[tokio::test]
async fn the_store_reaches_postgres_over_verified_tls() {
    let server = PgServer::shared();
    assert!(server.ca_file.is_some(), "the test server speaks TLS");
    let database = server.create_database();
    let daemon = pg_daemon(server, &database);
    assert_eq!(daemon.get("/v1/nodes").await.0, StatusCode::OK);
    let sessions = server
        .psql(
            "postgres",
            &format!(
                "SELECT count(*) FILTER (WHERE s.ssl AND s.version IN ('TLSv1.2', 'TLSv1.3')) || '/' || count(*) \
                 FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.datname = '{database}' AND a.backend_type = 'client backend'"
            ),
        )
        .expect("psql");
    let (tls, all) = sessions.trim().split_once('/').expect("tls/all");
    assert!(all.parse::<u32>().expect("count") >= 1, "no session of the daemon: {sessions}");
    assert_eq!(tls, all, "every session of the daemon is TLS: {sessions}");
}

/// Runs `metalhost serve` with `database_config` until it exits (it must, refusing); its output.
fn refused_start(database_config: &str) -> String {
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("metalhost.toml");
    std::fs::write(&config, format!("listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n{database_config}", dir.path().join("data").display()))
        .expect("config");
    let out = Command::new("timeout")
        .arg("60")
        .arg(paths::host_binary("metalhost"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("METALHOST_TOKEN", metalhost_tests::daemon::TOKEN)
        .output()
        .expect("run");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "the daemon must refuse to start: {text}");
    text
}

/// `verify-full` in both directions: a server whose certificate another CA signed is refused
/// (the daemon does not start, and says why), and so is a server that offers no TLS at all.
#[test]
fn a_server_with_another_ca_or_without_tls_is_refused() {
    let server = PgServer::shared();
    let database = server.create_database();
    let dir = tempfile::tempdir().expect("tmp");
    let (other_ca, _) = metalhost_tests::certs::ca("some other CA");
    let other = dir.path().join("other-ca.pem");
    std::fs::write(&other, other_ca.pem()).expect("write");
    let right = server.database_config(&database);
    let ca = server.ca_file.as_ref().expect("TLS").display().to_string();
    let wrong = right.replace(&ca, &other.display().to_string());
    assert_ne!(wrong, right);
    let text = refused_start(&wrong);
    assert!(text.contains("invalid peer certificate") && text.contains("UnknownIssuer"), "{text}");

    let plain = PgServer::start_plain();
    plain.psql("postgres", "CREATE DATABASE plain").expect("create");
    let text = refused_start(&format!("{}database_ca_file = \"{ca}\"\n", plain.database_config("plain")));
    assert!(text.contains("offers no TLS"), "{text}");
    // The same server without database_ca_file is reached in clear (loopback): the refusal above
    // came from the TLS requirement, not from an unreachable server.
    let daemon = Daemon::start_with(&plain.database_config("plain"));
    drop(daemon);
}
