//! The SQLite store: one connection owned by one thread, so no rusqlite call runs on an async worker.
//!
//! Callers send closures with [`Store::call`] and await the answer. Transactions are short and never
//! span a plugin call.

pub mod console;
pub mod events;
pub mod images;
pub mod instances;
pub mod inventory;
pub mod last_error;
mod migrations;
pub mod nodes;
pub mod seal;
pub mod switches;
pub mod tasks;

use std::path::Path;
use std::sync::mpsc;

use rusqlite::Connection;
use tokio::sync::oneshot;

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
    Db(#[from] rusqlite::Error),
    #[error("database migration failed: {0}")]
    Migration(String),
    #[error(transparent)]
    Seal(#[from] seal::SealError),
    #[error("the database thread has stopped")]
    Closed,
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// A cheap, cloneable handle to the database thread.
#[derive(Clone)]
pub struct Store {
    jobs: mpsc::Sender<Job>,
}

impl Store {
    /// Opens (or creates) the database, applies pending migrations, loads (or makes) the key that
    /// seals passwords and seals any still stored in clear, and starts its thread.
    pub fn open(path: &Path, key_path: &Path) -> Result<Store> {
        let mut conn = Connection::open(path)?;
        configure(&conn)?;
        migrations::apply(&mut conn)?;
        let key = seal::load_key(&conn, key_path)?;
        seal::register(&conn, &key)?;
        seal::seal_plaintext_rows(&conn)?;
        Ok(Self::spawn(conn))
    }

    fn spawn(mut conn: Connection) -> Store {
        let (jobs, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("metalhost-store".into())
            .spawn(move || {
                // Ends when every Store handle is dropped.
                while let Ok(job) = rx.recv() {
                    job(&mut conn);
                }
            })
            .map(|_| ())
            .unwrap_or_else(|e| tracing::error!("cannot start the database thread: {e}"));
        Store { jobs }
    }

    /// Runs `f` on the database thread and returns its result.
    pub async fn call<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = tx.send(f(conn));
        });
        self.jobs.send(job).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

fn configure(conn: &Connection) -> Result<()> {
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
pub fn is_constraint(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(err, _) if err.code == rusqlite::ErrorCode::ConstraintViolation)
}

/// Reads a text column into a type that parses from it (states, kinds, addresses).
pub(crate) fn parse_col<T: std::str::FromStr>(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<T>
where
    T::Err: std::fmt::Display,
{
    let text: String = row.get(idx)?;
    text.parse().map_err(|e: T::Err| rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, e.to_string().into()))
}

/// Serialises a typed column by its text form, so the API shows what the database holds.
pub(crate) fn as_text<T: std::fmt::Display, S: serde::Serializer>(value: &T, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_str(value)
}
