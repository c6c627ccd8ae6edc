//! Numbered schema migrations, embedded in the binary and applied in order at startup.
//!
//! The same list serves both engines: written in SQLite's words, each is given to PostgreSQL with
//! its types spelt the PostgreSQL way ([`for_postgres`]). SQLite records the last one applied in
//! `PRAGMA user_version`, PostgreSQL in a `schema_version` table, under an advisory lock so daemons
//! starting together migrate once. A published migration is never edited: changes go into a new one.

use super::db::{Db, params};
use super::{Result, StoreError};

const MIGRATIONS: &[&str] = &[
    // 1: the initial schema. Times are Unix milliseconds.
    r#"
    CREATE TABLE switches (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        address     TEXT NOT NULL,
        port        INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
        username    TEXT NOT NULL,
        password    TEXT NOT NULL,
        driver      TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        host_key    TEXT,
        host_key_pinned INTEGER NOT NULL DEFAULT 0,
        created_at  INTEGER NOT NULL
    );
    CREATE TABLE images (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        url         TEXT,
        file        TEXT,
        sha256      TEXT NOT NULL,
        size        INTEGER,
        compression TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        CHECK ((url IS NULL) <> (file IS NULL))
    );
    CREATE TABLE instances (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        image_id    INTEGER NOT NULL REFERENCES images(id) ON DELETE RESTRICT,
        state       TEXT NOT NULL,
        last_error  TEXT,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    );
    CREATE TABLE nodes (
        id           INTEGER PRIMARY KEY,
        name         TEXT NOT NULL UNIQUE,
        mac          TEXT NOT NULL UNIQUE,
        ip           TEXT NOT NULL,
        cpus         INTEGER NOT NULL CHECK (cpus > 0),
        ram_mb       INTEGER NOT NULL CHECK (ram_mb > 0),
        disk_gb      INTEGER NOT NULL CHECK (disk_gb > 0),
        bmc_address  TEXT NOT NULL,
        bmc_port     INTEGER NOT NULL CHECK (bmc_port BETWEEN 1 AND 65535),
        bmc_username TEXT NOT NULL,
        bmc_password TEXT NOT NULL,
        power_driver TEXT NOT NULL,
        switch_id    INTEGER NOT NULL REFERENCES switches(id) ON DELETE RESTRICT,
        switch_port  TEXT NOT NULL,
        state        TEXT NOT NULL,
        power_state  TEXT NOT NULL DEFAULT 'unknown',
        network      TEXT NOT NULL DEFAULT 'unknown',
        vlan         INTEGER,
        maintenance  INTEGER NOT NULL DEFAULT 0,
        last_error   TEXT,
        instance_id  INTEGER UNIQUE REFERENCES instances(id) ON DELETE SET NULL,
        state_deadline INTEGER,
        created_at   INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL,
        UNIQUE (switch_id, switch_port)
    );
    CREATE INDEX nodes_state ON nodes(state);
    CREATE TABLE node_events (
        id          INTEGER PRIMARY KEY,
        node_id     INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
        at          INTEGER NOT NULL,
        kind        TEXT NOT NULL,
        from_state  TEXT,
        to_state    TEXT,
        message     TEXT NOT NULL,
        duration_ms INTEGER
    );
    CREATE INDEX node_events_node ON node_events(node_id, id);
    CREATE TABLE tasks (
        id            INTEGER PRIMARY KEY,
        node_id       INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
        kind          TEXT NOT NULL,
        state         TEXT NOT NULL,
        payload       TEXT NOT NULL,
        image_id      INTEGER REFERENCES images(id) ON DELETE SET NULL,
        image_token_hash TEXT,
        deadline      INTEGER NOT NULL,
        last_heartbeat INTEGER,
        bytes_written INTEGER NOT NULL DEFAULT 0,
        total_bytes   INTEGER,
        message       TEXT,
        created_at    INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL
    );
    CREATE INDEX tasks_node ON tasks(node_id, state);
    CREATE TABLE node_tokens (
        token_hash TEXT PRIMARY KEY,
        node_id    INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
        expires_at INTEGER NOT NULL
    );
    "#,
    // 2: why a node or instance failed, as a JSON record (store/last_error.rs) beside the text.
    r#"
    ALTER TABLE nodes ADD COLUMN last_error_detail TEXT;
    ALTER TABLE instances ADD COLUMN last_error_detail TEXT;
    "#,
    // 3: each node's console log, a bounded ring (store/console.rs).
    CONSOLE_LINES,
    // 4: inspection (store/inventory.rs): each node's last hardware report, its firmware's boot
    // mode, and the LLDP chassis id by which a switch is recognised from a node's side.
    r#"
    CREATE TABLE node_inventory (
        node_id     INTEGER PRIMARY KEY REFERENCES nodes(id) ON DELETE CASCADE,
        report      TEXT NOT NULL,
        reported_at INTEGER NOT NULL
    );
    ALTER TABLE nodes ADD COLUMN boot_mode TEXT NOT NULL DEFAULT 'bios';
    ALTER TABLE switches ADD COLUMN chassis_id TEXT;
    CREATE UNIQUE INDEX switches_chassis_id ON switches(chassis_id) WHERE chassis_id IS NOT NULL;
    "#,
    // 5: several daemons on one pool (store/cluster.rs): who is alive, and which daemon drives
    // each node (its lease: owner, epoch, expiry in Unix ms).
    r#"
    CREATE TABLE daemons (
        name         TEXT PRIMARY KEY,
        url          TEXT NOT NULL,
        started_at   INTEGER NOT NULL,
        heartbeat_at INTEGER NOT NULL
    );
    ALTER TABLE nodes ADD COLUMN lease_owner TEXT;
    ALTER TABLE nodes ADD COLUMN lease_epoch INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE nodes ADD COLUMN lease_expires INTEGER;
    CREATE INDEX nodes_lease_owner ON nodes(lease_owner);
    "#,
    // 6: the kind of a failed task's failure (a `FailureKind`, from the agent's result); NULL for
    // tasks that succeeded, failed before, or were failed by the host.
    r#"
    ALTER TABLE tasks ADD COLUMN failure_kind TEXT;
    "#,
    // 7: the pool-wide lock on a switch's configuration (store/cluster.rs): a row that expires
    // like a lease and its holder's heartbeat renews, instead of a database session's lock.
    r#"
    CREATE TABLE switch_locks (
        switch_id INTEGER PRIMARY KEY REFERENCES switches(id) ON DELETE CASCADE,
        holder    TEXT NOT NULL,
        expires   INTEGER NOT NULL
    );
    "#,
    // 8: what each image really is, judged when it was added (images/inspect.rs): its format, the
    // bytes it puts on a disk, the verdict and its reason. Images added before stay `raw` with no
    // verdict ("not inspected").
    r#"
    ALTER TABLE images ADD COLUMN format TEXT NOT NULL DEFAULT 'raw';
    ALTER TABLE images ADD COLUMN virtual_size INTEGER;
    ALTER TABLE images ADD COLUMN verdict TEXT;
    ALTER TABLE images ADD COLUMN verdict_reason TEXT;
    "#,
    // 9: projects, users and who may do what (store/projects.rs, store/users.rs, api/policy.rs).
    // The operator token of earlier versions becomes the first admin's: user 1, `admin`. Tokens are
    // kept as their SHA-256 only. Instances and images belong to a project or to nobody (made by an
    // admin: public images, instances on `[network] tenant_vlan`); a node may be dedicated to one.
    // Each claim of a node starts a new tenancy (`nodes.tenancy`, larger than any before it);
    // events and console lines carry the tenancy they were recorded in, so one tenant's lines are
    // never shown to the next (instance ids are not enough: SQLite may reuse a deleted one). `audit` is who did what, to what, with what outcome, when.
    r#"
    CREATE TABLE projects (
        id         INTEGER PRIMARY KEY,
        name       TEXT NOT NULL UNIQUE,
        quota      INTEGER NOT NULL CHECK (quota >= 0),
        vlan       INTEGER UNIQUE,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE users (
        id         INTEGER PRIMARY KEY,
        name       TEXT NOT NULL UNIQUE,
        admin      INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL
    );
    INSERT INTO users (name, admin, created_at) VALUES ('admin', 1, 0);
    CREATE TABLE memberships (
        user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        role       TEXT NOT NULL,
        PRIMARY KEY (user_id, project_id)
    );
    CREATE INDEX memberships_project ON memberships(project_id);
    CREATE TABLE tokens (
        id          INTEGER PRIMARY KEY,
        user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        hash        TEXT NOT NULL UNIQUE,
        description TEXT NOT NULL DEFAULT '',
        created_at  INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL,
        revoked_at  INTEGER
    );
    CREATE INDEX tokens_user ON tokens(user_id);
    ALTER TABLE instances ADD COLUMN project_id INTEGER REFERENCES projects(id);
    CREATE INDEX instances_project ON instances(project_id);
    ALTER TABLE images ADD COLUMN project_id INTEGER REFERENCES projects(id);
    ALTER TABLE nodes ADD COLUMN project_id INTEGER REFERENCES projects(id);
    ALTER TABLE nodes ADD COLUMN tenancy INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE node_events ADD COLUMN tenancy INTEGER;
    ALTER TABLE console_lines ADD COLUMN tenancy INTEGER;
    CREATE TABLE audit (
        id      INTEGER PRIMARY KEY,
        at      INTEGER NOT NULL,
        user_id INTEGER,
        actor   TEXT NOT NULL,
        action  TEXT NOT NULL,
        object  TEXT NOT NULL,
        outcome INTEGER NOT NULL,
        address TEXT
    );
    "#,
    // 10: what an instance is told about itself (domain/identity.rs, config_drive.rs). A project's
    // subnet (IPv4 CIDR, gateway, DNS servers, comma-separated) from which each instance gets an
    // address: unique within the project (the index holds it across daemons), freed with the
    // instance's row. Instances keep a UUID (their cloud-init instance id), host name, SSH keys and
    // metadata (JSON) and their user data sealed like passwords, and whether they get a config
    // drive at all. Users register SSH key pairs by name.
    r#"
    ALTER TABLE projects ADD COLUMN subnet TEXT;
    ALTER TABLE projects ADD COLUMN gateway TEXT;
    ALTER TABLE projects ADD COLUMN dns TEXT NOT NULL DEFAULT '';
    ALTER TABLE instances ADD COLUMN uuid TEXT;
    ALTER TABLE instances ADD COLUMN hostname TEXT;
    ALTER TABLE instances ADD COLUMN ssh_keys TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE instances ADD COLUMN meta TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE instances ADD COLUMN user_data TEXT;
    ALTER TABLE instances ADD COLUMN address TEXT;
    ALTER TABLE instances ADD COLUMN config_drive INTEGER NOT NULL DEFAULT 0;
    CREATE UNIQUE INDEX instances_address ON instances(project_id, address);
    CREATE TABLE keypairs (
        id         INTEGER PRIMARY KEY,
        user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name       TEXT NOT NULL,
        public_key TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        UNIQUE (user_id, name)
    );
    "#,
];

pub(super) const CONSOLE_LINES: &str = r#"
    CREATE TABLE console_lines (
        id      INTEGER PRIMARY KEY,
        node_id INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
        at      INTEGER NOT NULL,
        source  TEXT NOT NULL,
        text    TEXT NOT NULL
    );
    CREATE INDEX console_lines_node ON console_lines(node_id, id);
    "#;

/// The lock key PostgreSQL daemons take while migrating ("metalhst" in ASCII).
const MIGRATION_LOCK: i64 = 0x6d65_7461_6c68_7374;

pub fn apply(db: &mut Db) -> Result<()> {
    let tx = db.transaction()?;
    let current: i64 = if tx.is_postgres() {
        // Lock first: two daemons creating the table at once would collide in the catalogue.
        tx.query_row("SELECT pg_advisory_xact_lock(?1)::text", params![MIGRATION_LOCK], |r| r.get::<String>(0))?;
        tx.batch("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")?;
        tx.query_opt("SELECT version FROM schema_version", params![], |r| r.get(0))?.unwrap_or(0)
    } else {
        tx.query_row("PRAGMA user_version", params![], |r| r.get(0))?
    };
    let current = usize::try_from(current).unwrap_or(0);
    if current > MIGRATIONS.len() {
        return Err(StoreError::Migration(format!(
            "the database is at schema version {current}, newer than this metalhost knows ({}): refusing to touch it",
            MIGRATIONS.len()
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let version = index + 1;
        let sql = if tx.is_postgres() { for_postgres(sql) } else { (*sql).to_owned() };
        tx.batch(&sql).map_err(|e| StoreError::Migration(format!("migration {version}: {e}")))?;
        if tx.is_postgres() {
            tx.execute("DELETE FROM schema_version", params![])?;
            tx.execute("INSERT INTO schema_version (version) VALUES (?1)", params![version])?;
        } else {
            tx.batch(&format!("PRAGMA user_version = {version}"))?;
        }
        tracing::info!(version, "applied database migration");
    }
    tx.commit()
}

/// A migration in PostgreSQL's words: 64-bit integers throughout (SQLite's INTEGER is 64-bit), and
/// `id INTEGER PRIMARY KEY` (SQLite's rowid) as an identity column.
pub(super) fn for_postgres(sql: &str) -> String {
    sql.lines()
        .map(|line| {
            let trimmed = line.trim_start();
            if trimmed.starts_with("id ") && trimmed.contains("INTEGER PRIMARY KEY") {
                line.replace("INTEGER PRIMARY KEY", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
            } else {
                line.replace("INTEGER", "BIGINT")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::last_error::LastError;

    #[test]
    fn postgres_gets_identity_ids_and_64_bit_integers() {
        let pg = for_postgres(MIGRATIONS[0]);
        assert!(pg.contains("id          BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"), "{pg}");
        assert!(pg.contains("port        BIGINT NOT NULL CHECK"), "{pg}");
        assert!(!pg.contains("INTEGER"), "{pg}");
        let inventory = for_postgres(MIGRATIONS[3]);
        assert!(inventory.contains("node_id     BIGINT PRIMARY KEY REFERENCES nodes(id)"), "{inventory}");
    }

    #[test]
    fn a_version_1_database_keeps_its_failure_text_after_migration_2() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute_batch(
            "INSERT INTO switches (id, name, address, port, username, password, driver, created_at)
               VALUES (1, 'sw', '127.0.0.1', 830, 'u', 'p', 'juniper', 0);
             INSERT INTO nodes (id, name, mac, ip, cpus, ram_mb, disk_gb, bmc_address, bmc_port, bmc_username,
                                bmc_password, power_driver, switch_id, switch_port, state, last_error, created_at, updated_at)
               VALUES (1, 'n1', '52:54:00:00:00:01', '10.0.0.1', 1, 1, 1, '127.0.0.1', 623, 'u', 'p', 'ipmitool', 1,
                       'ge-0/0/1', 'error', 'step \"power off\" failed: old words', 0, 0);",
        )
        .unwrap();
        let mut db = Db::sqlite(conn, crate::store::seal::SealKey::throwaway());
        apply(&mut db).unwrap();
        let (text, detail) =
            db.query_row("SELECT last_error, last_error_detail FROM nodes WHERE id = 1", params![], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        assert_eq!(LastError::from_columns(text, detail), Some(LastError::text("step \"power off\" failed: old words")));
    }
}
