//! Images: uploaded files kept in the data dir, or external URLs, each with its sha256.

use super::db::{Db, Row, params};

use super::{Result, StoreError};
use crate::domain::Key;
use crate::domain::{Compression, ImageFormat, ImageId, ProjectId, now_ms};

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Image {
    #[schema(value_type = i64)]
    pub id: ImageId,
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
    /// What the file is, told from its bytes when it was added.
    #[serde(serialize_with = "super::as_text")]
    #[schema(value_type = String, example = "qcow2")]
    pub format: ImageFormat,
    /// The bytes it puts on a disk (unknown for an image compressed whole).
    pub virtual_size: Option<u64>,
    /// `accepted`, or absent for an image added before images were inspected.
    pub verdict: Option<String>,
    /// What the inspection found.
    pub verdict_reason: Option<String>,
    #[serde(serialize_with = "crate::domain::time::as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    /// The project it belongs to; none: a public image, every project's to use.
    #[schema(value_type = Option<i64>)]
    pub project_id: Option<ProjectId>,
}

impl Image {
    pub fn id(&self) -> ImageId {
        self.id
    }
}

pub struct NewImage {
    pub name: String,
    pub url: Option<String>,
    pub file: Option<String>,
    pub sha256: String,
    pub size: Option<u64>,
    pub compression: Compression,
    pub format: ImageFormat,
    pub virtual_size: Option<u64>,
    /// The inspection's reason for accepting it.
    pub verdict_reason: String,
    pub project_id: Option<ProjectId>,
}

const COLUMNS: &str = "id, name, url, file, sha256, size, compression, created_at, format, virtual_size, verdict, verdict_reason, project_id";

fn from_row(row: &Row<'_>) -> Result<Image> {
    Ok(Image {
        id: row.get(0)?,
        name: row.get(1)?,
        url: row.get(2)?,
        file: row.get(3)?,
        sha256: row.get(4)?,
        size: row.get(5)?,
        compression: row.parse(6)?,
        created_at: row.get(7)?,
        format: row.parse(8)?,
        virtual_size: row.get(9)?,
        verdict: row.get(10)?,
        verdict_reason: row.get(11)?,
        project_id: row.get(12)?,
    })
}

pub fn name_taken(conn: &Db, name: &str) -> Result<bool> {
    conn.query_row("SELECT EXISTS(SELECT 1 FROM images WHERE name = ?1)", params![name], |r| r.get(0))
}

pub fn insert(conn: &mut Db, new: NewImage) -> Result<Image> {
    let tx = conn.transaction()?;
    if name_taken(&tx, &new.name)? {
        return Err(StoreError::Conflict(format!("an image named {:?} already exists", new.name)));
    }
    let id: i64 = tx.query_row(
        "INSERT INTO images (name, url, file, sha256, size, compression, created_at, format, virtual_size, verdict, verdict_reason, project_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'accepted', ?10, ?11) RETURNING id",
        params![
            new.name,
            new.url,
            new.file,
            new.sha256,
            new.size,
            new.compression.as_str(),
            now_ms(),
            new.format.as_str(),
            new.virtual_size,
            new.verdict_reason,
            new.project_id
        ],
        |r| r.get(0),
    )?;
    let image = get(&tx, &Key::Id(id))?;
    tx.commit()?;
    Ok(image)
}

pub fn list(conn: &Db) -> Result<Vec<Image>> {
    conn.query_map(&format!("SELECT {COLUMNS} FROM images ORDER BY id"), params![], from_row)
}

/// The images users of `projects` see: the public ones and their projects'.
pub fn list_visible(conn: &Db, projects: &[ProjectId]) -> Result<Vec<Image>> {
    Ok(list(conn)?.into_iter().filter(|i| i.project_id.is_none_or(|p| projects.contains(&p))).collect())
}

pub fn get(conn: &Db, key: &Key) -> Result<Image> {
    let found = match key {
        Key::Id(id) => conn.query_opt(&format!("SELECT {COLUMNS} FROM images WHERE id = ?1"), params![id], from_row)?,
        Key::Name(n) => conn.query_opt(&format!("SELECT {COLUMNS} FROM images WHERE name = ?1"), params![n], from_row)?,
    };
    found.ok_or_else(|| StoreError::NotFound(format!("image {key}")))
}

/// Deletes the row and returns it (the caller removes the file). Refused while an instance uses it.
pub fn delete(conn: &mut Db, key: &Key) -> Result<Image> {
    let tx = conn.transaction()?;
    let image = get(&tx, key)?;
    let users: Vec<String> = tx.query_map("SELECT name FROM instances WHERE image_id = ?1 ORDER BY id LIMIT 5", params![image.id], |r| r.get(0))?;
    if !users.is_empty() {
        return Err(StoreError::Conflict(format!("image {:?} is used by instances: {}; delete them first", image.name, users.join(", "))));
    }
    tx.execute("DELETE FROM images WHERE id = ?1", params![image.id])?;
    tx.commit()?;
    Ok(image)
}
