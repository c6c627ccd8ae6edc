//! Images: uploaded files kept in the data dir, or external URLs, each with its sha256.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::switches::Key;
use super::{Result, StoreError};
use crate::domain::{Compression, ImageId, now_ms};

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Image {
    pub id: i64,
    pub name: String,
    /// Set for external images.
    pub url: Option<String>,
    /// Set for uploaded images: the file under the data dir.
    #[serde(skip)]
    pub file: Option<String>,
    pub sha256: String,
    pub size: Option<u64>,
    #[serde(serialize_with = "super::as_text")]
    #[schema(value_type = String, example = "gzip")]
    pub compression: Compression,
    #[serde(serialize_with = "crate::domain::time::as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

impl Image {
    pub fn id(&self) -> ImageId {
        ImageId(self.id)
    }
}

pub struct NewImage {
    pub name: String,
    pub url: Option<String>,
    pub file: Option<String>,
    pub sha256: String,
    pub size: Option<u64>,
    pub compression: Compression,
}

const COLUMNS: &str = "id, name, url, file, sha256, size, compression, created_at";

fn from_row(row: &Row<'_>) -> rusqlite::Result<Image> {
    Ok(Image {
        id: row.get(0)?,
        name: row.get(1)?,
        url: row.get(2)?,
        file: row.get(3)?,
        sha256: row.get(4)?,
        size: row.get(5)?,
        compression: super::parse_col(row, 6)?,
        created_at: row.get(7)?,
    })
}

pub fn name_taken(conn: &Connection, name: &str) -> Result<bool> {
    Ok(conn.query_row("SELECT EXISTS(SELECT 1 FROM images WHERE name = ?1)", [name], |r| r.get(0))?)
}

pub fn insert(conn: &mut Connection, new: NewImage) -> Result<Image> {
    let tx = conn.transaction()?;
    if name_taken(&tx, &new.name)? {
        return Err(StoreError::Conflict(format!("an image named {:?} already exists", new.name)));
    }
    tx.execute(
        "INSERT INTO images (name, url, file, sha256, size, compression, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![new.name, new.url, new.file, new.sha256, new.size, new.compression.as_str(), now_ms()],
    )?;
    let id = tx.last_insert_rowid();
    let image = get(&tx, &Key::Id(id))?;
    tx.commit()?;
    Ok(image)
}

pub fn list(conn: &Connection) -> Result<Vec<Image>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM images ORDER BY id"))?;
    let rows = stmt.query_map([], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn get(conn: &Connection, key: &Key) -> Result<Image> {
    let found = match key {
        Key::Id(id) => conn.query_row(&format!("SELECT {COLUMNS} FROM images WHERE id = ?1"), [id], from_row).optional()?,
        Key::Name(n) => conn.query_row(&format!("SELECT {COLUMNS} FROM images WHERE name = ?1"), [n], from_row).optional()?,
    };
    found.ok_or_else(|| StoreError::NotFound(format!("image {key}")))
}

/// Deletes the row and returns it (the caller removes the file). Refused while an instance uses it.
pub fn delete(conn: &mut Connection, key: &Key) -> Result<Image> {
    let tx = conn.transaction()?;
    let image = get(&tx, key)?;
    let users: Vec<String> = {
        let mut stmt = tx.prepare("SELECT name FROM instances WHERE image_id = ?1 ORDER BY id LIMIT 5")?;
        let rows = stmt.query_map([image.id], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    if !users.is_empty() {
        return Err(StoreError::Conflict(format!("image {:?} is used by instances: {}; delete them first", image.name, users.join(", "))));
    }
    tx.execute("DELETE FROM images WHERE id = ?1", [image.id])?;
    tx.commit()?;
    Ok(image)
}
