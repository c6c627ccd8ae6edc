//! The store: database connections, SQLite (the default, one) or PostgreSQL (a few), each owned by
//! a thread of its own, so no database call runs on an async worker.
//!
//! Callers send closures with [`Store::call`] and await the answer. Transactions are short and never
//! span a plugin call. The SQL lives in this module's files, written once for both engines
//! (store/db.rs).

pub mod audit;
pub mod cluster;
pub mod console;
pub mod db;
pub mod events;
pub mod images;
pub mod instances;
pub mod inventory;
pub mod keypairs;
pub mod last_error;
mod migrations;
pub mod nodes;
pub mod projects;
pub mod seal;
pub mod switches;
pub mod tasks;
pub mod transitions;
pub mod users;

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use db::tls::PgTls;
pub use db::{Db, DbError};
use tokio::sync::oneshot;

use crate::domain::Secret;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    /// The request collides with what exists (duplicate, still in use).
    #[error("{0}")]
    Conflict(String),
    /// The request refers to something that does not exist or is in the wrong state.
    #[error("{0}")]
    Unprocessable(String),
    #[error("database error: {0}")]
    Db(DbError),
    #[error("database migration failed: {0}")]
    Migration(String),
    #[error(transparent)]
    Seal(#[from] seal::SealError),
    #[error("cannot connect to the database {url}: {message}")]
    Connect { url: String, message: String },
    #[error("the database thread has stopped")]
    Closed,
    /// A runner's write refused because its daemon no longer holds the node's lease (fencing).
    #[error("{0}")]
    LeaseLost(String),
}

impl StoreError {
    /// A failure that another attempt of the same call may not meet (store/db/error.rs): runners
    /// retry these like a device that did not answer (provision/mod.rs).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Db(e) if e.is_transient())
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

type Job = Box<dyn FnOnce(&mut Db) + Send>;

/// Where the pool lives: `database = "sqlite:///var/lib/metalhost/metalhost.db"` (the default, one
/// daemon) or `"postgres://user@host:5432/metalhost"` (several daemons, one pool).
#[derive(Clone)]
pub enum Database {
    Sqlite(PathBuf),
    /// The URL carries no password (config refuses one there); it comes from a file, as a Secret.
    Postgres {
        url: String,
        password: Option<Secret>,
        /// `database_ca_file`: TLS verified against this CA (db/tls.rs).
        ca_file: Option<PathBuf>,
    },
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            Database::Postgres { url, .. } => f.write_str(url),
        }
    }
}

tokio::task_local! {
    /// The lease of the node whose runner this task is: every store call it makes is fenced by it.
    pub static FENCE: cluster::Lease;
}

/// A cheap, cloneable handle to the database thread.
#[derive(Clone)]
pub struct Store {
    jobs: mpsc::Sender<Job>,
    shared: bool,
}

impl Store {
    /// Opens (or creates) the database, applies pending migrations, loads (or makes) the key that
    /// seals passwords and seals any still stored in clear, and starts its thread. The connection
    /// is made on that thread: the PostgreSQL client runs its own small runtime, which must not
    /// start inside tokio's.
    /// `session` names the PostgreSQL session (`application_name`), so an operator reading
    /// `pg_stat_activity` sees which daemon each is.
    pub fn open(database: &Database, key_path: &Path, session: &str) -> Result<Store> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let shared = matches!(database, Database::Postgres { .. });
        // SQLite has one writer: one connection. PostgreSQL: a few, each on its own thread, taking
        // jobs from one queue, so one call's round trips do not hold up every other call (the
        // first migrates and seals; the others only connect and read the key).
        let connections = if shared { POSTGRES_CONNECTIONS } else { 1 };
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for index in 0..connections {
            let (ready_tx, ready_rx) = mpsc::channel::<Result<()>>();
            let (database, key_path, session, rx) = (database.clone(), key_path.to_owned(), session.to_owned(), rx.clone());
            std::thread::Builder::new()
                .name(format!("metalhost-store-{index}"))
                .spawn(move || {
                    let opened = if index == 0 { connect(&database, &key_path, &session) } else { connect_more(&database, &key_path, &session) };
                    let mut db = match opened {
                        Ok(db) => {
                            let _ = ready_tx.send(Ok(()));
                            db
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    // Ends when every Store handle is dropped. The queue's lock is held only
                    // while this thread waits for the next job.
                    loop {
                        let job = match rx.lock() {
                            Ok(queue) => queue.recv(),
                            Err(poisoned) => poisoned.into_inner().recv(),
                        };
                        let Ok(job) = job else { break };
                        db.reconnect_if_closed();
                        job(&mut db);
                    }
                })
                .map_err(|e| StoreError::Connect { url: "(thread)".into(), message: format!("cannot start the database thread: {e}") })?;
            ready_rx.recv().map_err(|_| StoreError::Closed)??;
        }
        Ok(Store { jobs, shared })
    }

    /// Whether several daemons may share this pool (PostgreSQL); SQLite serves one daemon.
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// Runs `f` on the database thread and returns its result. Inside a node's runner (which sets
    /// [`FENCE`]) `f` runs only while the runner's daemon still holds the node's lease, in the
    /// transaction that checked it.
    pub async fn call<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Db) -> Result<T> + Send + 'static,
    {
        let fence = FENCE.try_with(Clone::clone).ok();
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |db| {
            let result = match &fence {
                Some(lease) => fenced(db, lease, f),
                None => f(db),
            };
            let _ = tx.send(result);
        });
        self.jobs.send(job).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

/// `f` in one transaction with the lease check, which holds the node's row on PostgreSQL: no other
/// daemon takes the lease between the check and `f`'s writes. A transaction `f` opens itself is a
/// savepoint of this one; `f`'s error rolls everything back.
fn fenced<T>(db: &mut Db, lease: &cluster::Lease, f: impl FnOnce(&mut Db) -> Result<T>) -> Result<T> {
    let mut tx = db.transaction()?;
    cluster::check(&tx, lease)?;
    let value = f(&mut tx)?;
    tx.commit()?;
    Ok(value)
}

/// Connections to a PostgreSQL pool per daemon (threads of the store). Each call still runs on one
/// connection, in its own transactions; calls from different tasks overlap as they would from
/// several daemons.
const POSTGRES_CONNECTIONS: usize = 4;

/// One more connection to a PostgreSQL pool that [`connect`] opened (migrated, sealed): the key only.
fn connect_more(database: &Database, key_path: &Path, session: &str) -> Result<Db> {
    let Database::Postgres { url, password, ca_file } = database else {
        return Err(StoreError::Connect { url: database.to_string(), message: "SQLite takes one connection".into() });
    };
    let config = postgres_config(url, password.as_ref(), session)?;
    let tls = PgTls::new(ca_file.as_deref()).map_err(|message| StoreError::Connect { url: url.clone(), message })?;
    let client = tls.connect(&config).map_err(|message| StoreError::Connect { url: url.clone(), message })?;
    let mut db = Db::postgres(client, config, tls, seal::SealKey::throwaway());
    let key = seal::load_key(&db, key_path)?;
    db.set_key(key);
    Ok(db)
}

/// How long the server lets a session sit idle inside a transaction (see `postgres_config`).
const IDLE_IN_TRANSACTION_MS: u64 = 3000;

fn postgres_config(url: &str, password: Option<&Secret>, session: &str) -> Result<postgres::Config> {
    let mut config: postgres::Config =
        url.parse().map_err(|e: postgres::Error| StoreError::Connect { url: url.to_owned(), message: e.to_string() })?;
    if let Some(password) = password {
        config.password(password.expose());
    }
    // A store transaction never waits on anything but its own statements (no plugin call inside
    // one), so one idle for seconds belongs to a frozen or cut-off daemon: the server ends it and
    // its row locks go, and the other daemons can take its leases over once they expire.
    config
        .application_name(session)
        .connect_timeout(std::time::Duration::from_secs(10))
        .options(&format!("-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS}"));
    Ok(config)
}

fn connect(database: &Database, key_path: &Path, session: &str) -> Result<Db> {
    // The key is read after the migrations, from a database that may already hold sealed values;
    // until then the connection carries a throwaway key that nothing is sealed with.
    let mut db = match database {
        Database::Sqlite(path) => {
            let conn = rusqlite::Connection::open(path)?;
            configure(&conn)?;
            Db::sqlite(conn, seal::SealKey::throwaway())
        }
        Database::Postgres { url, password, ca_file } => {
            let config = postgres_config(url, password.as_ref(), session)?;
            let tls = PgTls::new(ca_file.as_deref()).map_err(|message| StoreError::Connect { url: url.clone(), message })?;
            let client = tls.connect(&config).map_err(|message| StoreError::Connect { url: url.clone(), message })?;
            Db::postgres(client, config, tls, seal::SealKey::throwaway())
        }
    };
    migrations::apply(&mut db)?;
    let key = seal::load_key(&db, key_path)?;
    db.set_key(key);
    seal::seal_plaintext_rows(&mut db)?;
    Ok(db)
}

fn configure(conn: &rusqlite::Connection) -> Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Deleted and overwritten content is zeroed, so old values do not linger in free pages.
    conn.pragma_update(None, "secure_delete", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(())
}

/// True when `e` is a UNIQUE/FOREIGN KEY/CHECK violation: a last line of defence behind the
/// explicit checks, which give better messages.
pub fn is_constraint(e: &DbError) -> bool {
    e.is_constraint()
}

/// Serialises a typed column by its text form, so the API shows what the database holds.
pub(crate) fn as_text<T: std::fmt::Display, S: serde::Serializer>(value: &T, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_str(value)
}

/// Typed ids are stored as their integer.
macro_rules! id_values {
    ($($t:ty),+) => {$(
        impl db::ToValue for $t {
            fn to_value(&self) -> db::Value {
                db::Value::Int(self.0)
            }
        }
        impl db::FromValue for $t {
            fn from_value(value: &db::Value) -> std::result::Result<Self, String> {
                i64::from_value(value).map(Self)
            }
        }
    )+};
}
id_values!(
    crate::domain::NodeId,
    crate::domain::ImageId,
    crate::domain::InstanceId,
    crate::domain::EventId,
    crate::domain::ProjectId,
    crate::domain::UserId,
    crate::domain::TokenId
);
