//! One result row, read by index into Rust and domain types; sealed columns opened on the way.

use super::{DbError, FromValue, Value};
use crate::domain::Secret;
use crate::store::seal::SealKey;
use crate::store::{Result, StoreError};

/// One result row.
pub struct Row<'a> {
    pub(super) values: Vec<Value>,
    pub(super) key: &'a SealKey,
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

pub(super) fn column(index: usize, message: &str) -> StoreError {
    StoreError::Db(DbError::Column { index, message: message.to_owned() })
}
