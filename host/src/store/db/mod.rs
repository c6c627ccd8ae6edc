//! One database connection, SQLite or PostgreSQL, behind the few calls the store makes.
//!
//! The store's SQL is written once, in the dialect both engines share: `?N` placeholders (sent to
//! PostgreSQL as `$N`), `RETURNING id`, `ON CONFLICT`, no engine functions. Rows come back as
//! [`Value`]s, so a store module never sees which engine answered. Passwords are sealed and opened
//! here, in Rust, under the key (store/seal.rs): plaintext is only ever a bound parameter and a
//! read value, on either engine.
//!
//! This file is the connection (engine, statements, transactions); `value.rs` the values bound and
//! read, `row.rs` a result row, `dialect.rs` the placeholders, `error.rs` the engines' errors.

mod dialect;
mod error;
mod row;
pub mod tls;
mod value;

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::{Deref, DerefMut};

pub use error::DbError;
pub use row::Row;
pub(crate) use value::params;
pub use value::{FromValue, ToValue, Value};

use super::seal::SealKey;
use super::{Result, StoreError};
use dialect::to_postgres_placeholders;
use value::{pg_value, sqlite_value};

/// Which engine, and its connection.
#[allow(clippy::large_enum_variant, reason = "one per daemon, never moved")]
enum Engine {
    Sqlite(rusqlite::Connection),
    /// The client needs `&mut` to query; the store's one thread owns it, so a RefCell is enough.
    Postgres {
        client: RefCell<postgres::Client>,
        statements: RefCell<HashMap<String, postgres::Statement>>,
        /// To connect again when the server ends the session (restart, failover, an operator's
        /// pg_terminate_backend).
        config: Box<postgres::Config>,
        /// TLS or not, as the first connection was made.
        tls: tls::PgTls,
        /// When the last call started on this session.
        last_call: std::time::Instant,
    },
}

/// How long a PostgreSQL session may sit idle before its next call checks it is still there.
const IDLE_CHECK: std::time::Duration = std::time::Duration::from_millis(100);

/// The store's connection, with the key that seals passwords.
pub struct Db {
    engine: Engine,
    key: SealKey,
    /// How many transactions are open: an inner one is a savepoint (a fenced runner call wraps the
    /// store function, which may open its own; see `Store::call`).
    depth: usize,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.engine {
            Engine::Sqlite(_) => "Db(sqlite)",
            Engine::Postgres { .. } => "Db(postgres)",
        })
    }
}

impl Db {
    pub(super) fn sqlite(conn: rusqlite::Connection, key: SealKey) -> Db {
        Db { engine: Engine::Sqlite(conn), key, depth: 0 }
    }

    pub(super) fn postgres(client: postgres::Client, config: postgres::Config, tls: tls::PgTls, key: SealKey) -> Db {
        Db {
            engine: Engine::Postgres {
                client: RefCell::new(client),
                statements: RefCell::new(HashMap::new()),
                config: Box::new(config),
                tls,
                last_call: std::time::Instant::now(),
            },
            key,
            depth: 0,
        }
    }

    /// Connects again if the PostgreSQL server closed the session; the call that found it closed
    /// has already failed with a database error, the next one gets a fresh session.
    /// A session that sat idle for [`IDLE_CHECK`] is asked an empty query first, so one the
    /// server ended meanwhile is found closed here rather than by a failed call (with several
    /// connections, each would otherwise fail one call of its own); a busy one is not.
    pub(super) fn reconnect_if_closed(&mut self) {
        if let Engine::Postgres { client, last_call, .. } = &mut self.engine {
            if last_call.elapsed() >= IDLE_CHECK {
                // Its error is the ended session itself, which `is_closed` then reports.
                let _ = client.get_mut().is_valid(std::time::Duration::from_secs(5));
            }
            *last_call = std::time::Instant::now();
        }
        if let Engine::Postgres { client, statements, config, tls, .. } = &mut self.engine
            && client.get_mut().is_closed()
        {
            match tls.connect(config) {
                Ok(fresh) => {
                    tracing::warn!("the PostgreSQL session was closed; connected again");
                    *client.get_mut() = fresh;
                    statements.get_mut().clear();
                }
                Err(e) => tracing::error!("the PostgreSQL session was closed and connecting again failed: {e}"),
            }
        }
    }

    pub(super) fn set_key(&mut self, key: SealKey) {
        self.key = key;
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.engine, Engine::Postgres { .. })
    }

    /// Seals a password for the column `label` names.
    pub fn seal(&self, label: &str, plaintext: &str) -> Result<String> {
        Ok(self.key.seal(label, plaintext)?)
    }

    /// A sealed value read as text, opened under the store's key (`label` names its column).
    pub fn unseal(&self, label: &str, stored: &str) -> Result<String> {
        Ok(self.key.unseal(label, stored)?)
    }

    /// Runs one statement; returns how many rows it changed.
    pub fn execute(&self, sql: &str, params: &[&dyn ToValue]) -> Result<usize> {
        let values: Vec<Value> = params.iter().map(|p| p.to_value()).collect();
        match &self.engine {
            Engine::Sqlite(conn) => {
                let mut stmt = conn.prepare_cached(sql)?;
                Ok(stmt.execute(rusqlite::params_from_iter(values.iter()))?)
            }
            Engine::Postgres { client, statements, .. } => {
                let stmt = pg_statement(client, statements, sql)?;
                let refs = pg_params(&values);
                let changed = client.borrow_mut().execute(&stmt, &refs)?;
                Ok(usize::try_from(changed).unwrap_or(usize::MAX))
            }
        }
    }

    /// Runs several statements with no parameters (migrations, BEGIN/COMMIT).
    pub fn batch(&self, sql: &str) -> Result<()> {
        match &self.engine {
            Engine::Sqlite(conn) => Ok(conn.execute_batch(sql)?),
            Engine::Postgres { client, .. } => Ok(client.borrow_mut().batch_execute(sql)?),
        }
    }

    /// Every row, each read by `f`.
    pub fn query_map<T>(&self, sql: &str, params: &[&dyn ToValue], mut f: impl FnMut(&Row<'_>) -> Result<T>) -> Result<Vec<T>> {
        let values: Vec<Value> = params.iter().map(|p| p.to_value()).collect();
        let mut out = Vec::new();
        match &self.engine {
            Engine::Sqlite(conn) => {
                let mut stmt = conn.prepare_cached(sql)?;
                let width = stmt.column_count();
                let mut rows = stmt.query(rusqlite::params_from_iter(values.iter()))?;
                while let Some(row) = rows.next()? {
                    let values = (0..width).map(|i| row.get_ref(i).map(sqlite_value)).collect::<rusqlite::Result<Vec<_>>>()?;
                    out.push(f(&Row { values, key: &self.key })?);
                }
            }
            Engine::Postgres { client, statements, .. } => {
                let stmt = pg_statement(client, statements, sql)?;
                let refs = pg_params(&values);
                let rows = client.borrow_mut().query(&stmt, &refs)?;
                for row in &rows {
                    let values = (0..row.len()).map(|i| pg_value(row, i)).collect::<Result<Vec<_>>>()?;
                    out.push(f(&Row { values, key: &self.key })?);
                }
            }
        }
        Ok(out)
    }

    /// The first row, if any.
    pub fn query_opt<T>(&self, sql: &str, params: &[&dyn ToValue], f: impl FnMut(&Row<'_>) -> Result<T>) -> Result<Option<T>> {
        Ok(self.query_map(sql, params, f)?.into_iter().next())
    }

    /// The first row; none is an error (for queries that always answer: COUNT, EXISTS, RETURNING).
    pub fn query_row<T>(&self, sql: &str, params: &[&dyn ToValue], f: impl FnMut(&Row<'_>) -> Result<T>) -> Result<T> {
        self.query_opt(sql, params, f)?.ok_or(StoreError::Db(DbError::NoRow))
    }

    /// Starts a transaction; it rolls back unless committed. Inside another it is a savepoint,
    /// which the outer transaction's rollback undoes too.
    pub fn transaction(&mut self) -> Result<Tx<'_>> {
        match self.depth {
            0 => self.batch("BEGIN")?,
            depth => self.batch(&format!("SAVEPOINT tx{depth}"))?,
        }
        self.depth += 1;
        Ok(Tx { db: self, done: false })
    }
}

/// An open transaction: dereferences to the [`Db`], rolls back when dropped uncommitted.
pub struct Tx<'a> {
    db: &'a mut Db,
    done: bool,
}

impl Tx<'_> {
    pub fn commit(mut self) -> Result<()> {
        self.done = true;
        self.db.depth -= 1;
        match self.db.depth {
            0 => self.db.batch("COMMIT"),
            depth => self.db.batch(&format!("RELEASE SAVEPOINT tx{depth}")),
        }
    }
}

impl Deref for Tx<'_> {
    type Target = Db;
    fn deref(&self) -> &Db {
        self.db
    }
}

impl DerefMut for Tx<'_> {
    fn deref_mut(&mut self) -> &mut Db {
        self.db
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.db.depth -= 1;
        let undo = match self.db.depth {
            0 => "ROLLBACK".to_owned(),
            depth => format!("ROLLBACK TO SAVEPOINT tx{depth}; RELEASE SAVEPOINT tx{depth}"),
        };
        if let Err(e) = self.db.batch(&undo) {
            tracing::warn!("rollback failed: {e}");
        }
    }
}

/// The prepared statement for `sql`, prepared once per connection.
fn pg_statement(
    client: &RefCell<postgres::Client>,
    statements: &RefCell<HashMap<String, postgres::Statement>>,
    sql: &str,
) -> Result<postgres::Statement> {
    if let Some(stmt) = statements.borrow().get(sql) {
        return Ok(stmt.clone());
    }
    let stmt = client.borrow_mut().prepare(&to_postgres_placeholders(sql))?;
    statements.borrow_mut().insert(sql.to_owned(), stmt.clone());
    Ok(stmt)
}

fn pg_params(values: &[Value]) -> Vec<&(dyn postgres::types::ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn postgres::types::ToSql + Sync)).collect()
}
