//! One database connection, SQLite or PostgreSQL, behind the few calls the store makes.
//!
//! The store's SQL is written once, in the dialect both engines share: `?N` placeholders (sent to
//! PostgreSQL as `$N`), `RETURNING id`, `ON CONFLICT`, no engine functions. Rows come back as
//! [`Value`]s, so a store module never sees which engine answered. Passwords are sealed and opened
//! here, in Rust, under the key (store/seal.rs): plaintext is only ever a bound parameter and a
//! read value, on either engine.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Deref;

use super::seal::SealKey;
use super::{Result, StoreError};
use crate::domain::Secret;

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

/// A value sent to or read from either engine. Integers are 64-bit on both (the PostgreSQL schema
/// uses BIGINT where SQLite says INTEGER), booleans are 0/1.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
}

/// Anything the store binds as a parameter.
pub trait ToValue {
    fn to_value(&self) -> Value;
}

macro_rules! int_to_value {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value {
                // Every stored integer fits i64 (sizes, ids, ms times); saturate rather than wrap.
                Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
    )*};
}
int_to_value!(i64, i32, u16, u32, u64, usize);

impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}
impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_owned())
    }
}
impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}
impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}
impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
}
impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}

/// The parameters of one statement: `params![a, b, c]`.
macro_rules! params {
    () => { &[] as &[&dyn $crate::store::db::ToValue] };
    ($($p:expr),+ $(,)?) => { &[$(&$p as &dyn $crate::store::db::ToValue),+] as &[&dyn $crate::store::db::ToValue] };
}
pub(crate) use params;

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        })
    }
}

impl postgres::types::ToSql for Value {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use postgres::types::{IsNull, Type};
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => i.to_string().as_str().to_sql(ty, out),
                _ => Err(format!("an integer cannot be sent as {ty}").into()),
            },
            Value::Text(s) => s.as_str().to_sql(ty, out),
        }
    }

    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// Reads a value back into a Rust type.
pub trait FromValue: Sized {
    fn from_value(value: &Value) -> std::result::Result<Self, String>;
}

macro_rules! int_from_value {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(value: &Value) -> std::result::Result<Self, String> {
                match value {
                    Value::Int(i) => <$t>::try_from(*i).map_err(|_| format!("{i} is out of range for {}", stringify!($t))),
                    other => Err(format!("expected an integer, found {other:?}")),
                }
            }
        }
    )*};
}
int_from_value!(i64, i32, u16, u32, u64);

impl FromValue for bool {
    fn from_value(value: &Value) -> std::result::Result<Self, String> {
        i64::from_value(value).map(|i| i != 0)
    }
}
impl FromValue for String {
    fn from_value(value: &Value) -> std::result::Result<Self, String> {
        match value {
            Value::Text(s) => Ok(s.clone()),
            other => Err(format!("expected text, found {other:?}")),
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> std::result::Result<Self, String> {
        match value {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// One result row.
pub struct Row<'a> {
    values: Vec<Value>,
    key: &'a SealKey,
}

impl Row<'_> {
    pub fn get<T: FromValue>(&self, index: usize) -> Result<T> {
        let value = self.values.get(index).ok_or_else(|| column(index, "no such column"))?;
        T::from_value(value).map_err(|message| column(index, &message))
    }

    /// A text column parsed into a domain type (states, kinds, addresses).
    pub fn parse<T: std::str::FromStr>(&self, index: usize) -> Result<T>
    where
        T::Err: std::fmt::Display,
    {
        let text: String = self.get(index)?;
        text.parse().map_err(|e: T::Err| column(index, &e.to_string()))
    }

    /// A nullable text column parsed into a domain type.
    pub fn parse_opt<T: std::str::FromStr>(&self, index: usize) -> Result<Option<T>>
    where
        T::Err: std::fmt::Display,
    {
        let text: Option<String> = self.get(index)?;
        text.map(|t| t.parse().map_err(|e: T::Err| column(index, &e.to_string()))).transpose()
    }

    /// A sealed password column, opened under the store's key; `label` names the column.
    pub fn unseal(&self, index: usize, label: &str) -> Result<Secret> {
        let stored: String = self.get(index)?;
        Ok(Secret::new(self.key.unseal(label, &stored)?))
    }
}

fn column(index: usize, message: &str) -> StoreError {
    StoreError::Db(DbError::Column { index, message: message.to_owned() })
}

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
    },
}

/// The store's connection, with the key that seals passwords.
pub struct Db {
    engine: Engine,
    key: SealKey,
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
        Db { engine: Engine::Sqlite(conn), key }
    }

    pub(super) fn postgres(client: postgres::Client, config: postgres::Config, key: SealKey) -> Db {
        Db { engine: Engine::Postgres { client: RefCell::new(client), statements: RefCell::new(HashMap::new()), config: Box::new(config) }, key }
    }

    /// Connects again if the PostgreSQL server closed the session; the call that found it closed
    /// has already failed with a database error, the next one gets a fresh session.
    pub(super) fn reconnect_if_closed(&mut self) {
        if let Engine::Postgres { client, statements, config } = &mut self.engine
            && client.get_mut().is_closed()
        {
            match config.connect(postgres::NoTls) {
                Ok(fresh) => {
                    tracing::warn!("the PostgreSQL session was closed; connected again");
                    *client.get_mut() = fresh;
                    statements.get_mut().clear();
                }
                Err(e) => tracing::error!("the PostgreSQL session was closed and connecting again failed: {}", DbError::from(e)),
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

    /// Starts a transaction; it rolls back unless committed.
    pub fn transaction(&mut self) -> Result<Tx<'_>> {
        self.batch("BEGIN")?;
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
        self.db.batch("COMMIT")
    }
}

impl Deref for Tx<'_> {
    type Target = Db;
    fn deref(&self) -> &Db {
        self.db
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if !self.done
            && let Err(e) = self.db.batch("ROLLBACK")
        {
            tracing::warn!("rollback failed: {e}");
        }
    }
}

fn sqlite_value(v: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        // The schema has no REAL or BLOB columns; keep a value readable if one appears.
        ValueRef::Real(f) => Value::Text(f.to_string()),
        ValueRef::Text(t) | ValueRef::Blob(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
    }
}

fn pg_value(row: &postgres::Row, i: usize) -> Result<Value> {
    use postgres::types::Type;
    let ty = row.columns().get(i).map(|c| c.type_().clone()).ok_or_else(|| column(i, "no such column"))?;
    let value = match ty {
        Type::INT8 => row.try_get::<_, Option<i64>>(i)?.map(Value::Int),
        Type::INT4 => row.try_get::<_, Option<i32>>(i)?.map(|v| Value::Int(v.into())),
        Type::INT2 => row.try_get::<_, Option<i16>>(i)?.map(|v| Value::Int(v.into())),
        Type::BOOL => row.try_get::<_, Option<bool>>(i)?.map(|v| Value::Int(v.into())),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => row.try_get::<_, Option<String>>(i)?.map(Value::Text),
        other => return Err(column(i, &format!("the store does not read PostgreSQL type {other}"))),
    };
    Ok(value.unwrap_or(Value::Null))
}

/// `?N` becomes `$N` and a bare `?` the next number, outside quoted text.
pub fn to_postgres_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    let mut in_quote = false;
    let mut next = 1;
    while let Some(c) = chars.next() {
        if c == '\'' {
            in_quote = !in_quote;
            out.push(c);
        } else if c == '?' && !in_quote {
            out.push('$');
            let mut digits = String::new();
            while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                digits.push(d);
                chars.next();
            }
            if digits.is_empty() {
                out.push_str(&next.to_string());
                next += 1;
            } else {
                out.push_str(&digits);
            }
        } else {
            out.push(c);
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_numbered_dollars_outside_quotes() {
        assert_eq!(to_postgres_placeholders("UPDATE t SET a = ?2 WHERE id = ?1 AND b = '?'"), "UPDATE t SET a = $2 WHERE id = $1 AND b = '?'");
        assert_eq!(to_postgres_placeholders("VALUES (?, ?, ?15)"), "VALUES ($1, $2, $15)");
    }

    #[test]
    fn values_read_back_as_the_types_they_were_bound_as() {
        assert_eq!(u16::from_value(&7u32.to_value()), Ok(7));
        assert!(u16::from_value(&Value::Int(70_000)).is_err());
        assert_eq!(bool::from_value(&true.to_value()), Ok(true));
        assert_eq!(Option::<String>::from_value(&None::<&str>.to_value()), Ok(None));
        assert_eq!(String::from_value(&Some("x").to_value()), Ok("x".to_owned()));
    }
}
