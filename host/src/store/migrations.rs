//! Numbered schema migrations, embedded in the binary and applied in order at startup.
//!
//! `PRAGMA user_version` records the last one applied. A published migration is never edited:
//! changes go into a new one.

use rusqlite::Connection;

use super::{Result, StoreError};

const MIGRATIONS: &[&str] = &[
    // 1: the initial schema (DESIGN §5). Times are Unix milliseconds.
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
];

pub fn apply(conn: &mut Connection) -> Result<()> {
    let current: usize = conn
        .pragma_query_value(None, "user_version", |row| row.get::<_, i64>(0))
        .map(|v| usize::try_from(v).unwrap_or(0))?;
    if current > MIGRATIONS.len() {
        return Err(StoreError::Migration(format!(
            "the database is at schema version {current}, newer than this metalhost knows ({}): refusing to touch it",
            MIGRATIONS.len()
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let version = index + 1;
        let tx = conn.transaction()?;
        tx.execute_batch(sql)
            .map_err(|e| StoreError::Migration(format!("migration {version}: {e}")))?;
        tx.pragma_update(None, "user_version", version as i64)?;
        tx.commit()?;
        tracing::info!(version, "applied database migration");
    }
    Ok(())
}
