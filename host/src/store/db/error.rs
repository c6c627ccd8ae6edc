//! The engines' errors, kept apart from the store's own refusals, and what they mean to a caller
//! (a broken constraint, a database that is away).

use crate::store::StoreError;

/// What went wrong in the engine, kept apart from the store's own refusals.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{}", pg_message(.0))]
    Postgres(#[from] postgres::Error),
    #[error("the query returned no row")]
    NoRow,
    #[error("column {index}: {message}")]
    Column { index: usize, message: String },
}

/// PostgreSQL's own words (its `Display` alone says only "db error").
fn pg_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}{}", db.severity(), db.message(), db.detail().map(|d| format!(" ({d})")).unwrap_or_default()),
        None => e.to_string(),
    }
}

impl DbError {
    /// A UNIQUE/FOREIGN KEY/CHECK violation: the last line of defence behind the explicit checks.
    pub fn is_constraint(&self) -> bool {
        match self {
            DbError::Sqlite(rusqlite::Error::SqliteFailure(err, _)) => err.code == rusqlite::ErrorCode::ConstraintViolation,
            // Class 23: integrity constraint violation.
            DbError::Postgres(e) => e.code().is_some_and(|c| c.code().starts_with("23")),
            _ => false,
        }
    }

    /// The database could not be reached (the session ended, the server is down or restarting):
    /// worth a retry, unlike an error in the query.
    pub fn is_unavailable(&self) -> bool {
        match self {
            // Class 57 is operator intervention (admin shutdown, terminated session); class 08 a
            // connection exception; no code at all an I/O failure.
            DbError::Postgres(e) => e.is_closed() || e.code().is_none_or(|c| c.code().starts_with("57") || c.code().starts_with("08")),
            _ => false,
        }
    }

    /// Worth another try as it is: the database was away, or refused this attempt only (a
    /// serialization failure, a deadlock victim, SQLite busy). The retry runs on a fresh session
    /// if the last one ended (store/mod.rs reconnects before each call).
    pub fn is_transient(&self) -> bool {
        match self {
            // 40001 serialization_failure, 40P01 deadlock_detected.
            DbError::Postgres(e) => self.is_unavailable() || e.code().is_some_and(|c| matches!(c.code(), "40001" | "40P01")),
            DbError::Sqlite(rusqlite::Error::SqliteFailure(err, _)) => {
                matches!(err.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            }
            _ => false,
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Db(e.into())
    }
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        StoreError::Db(e.into())
    }
}
