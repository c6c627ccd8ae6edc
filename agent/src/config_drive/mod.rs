//! The config drive: after the image is written, a partition at the end of the disk named and
//! labelled `config-2`, a FAT16 filesystem holding the OpenStack layout
//! (`openstack/latest/meta_data.json`, `user_data`, `network_data.json`) that cloud-init's
//! ConfigDrive source reads. On GPT and MBR images alike.
//!
//! Everything is computed first — the filesystem built in memory, the new table and every byte
//! to write — and only then written, so a disk with no room or a full table is left untouched.
//! At the disk's end (as Ironic does) the partition leaves the gap after the image to the image's
//! last partition, which cloud-init's growpart then grows into.

mod fat;
mod table;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use metalhost_wire::AgentFailureKind;
use sha2::{Digest, Sha256};

/// The partition's name (GPT) and the filesystem's label, what cloud-init looks for.
pub const LABEL: &str = "config-2";
/// The partition's size: FAT16 (enough clusters for it even in 4 KiB sectors), room for the
/// user data's 64 KiB many times over.
pub const SIZE: u64 = 32 << 20;
/// The most file bytes the filesystem is asked to hold (the rest is FAT and directories).
pub const MAX_CONTENT: usize = 12 << 20;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("config drive on {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("config drive on {}: no partition table the agent can extend ({reason})", path.display())]
    NoTable { path: PathBuf, reason: String },
    #[error(
        "config drive on {}: no room for the {} MiB config-2 partition at the disk's end: the image's partitions end at byte {used_end}, \
         the disk has {capacity} bytes",
        path.display(),
        SIZE >> 20
    )]
    NoRoom { path: PathBuf, used_end: u64, capacity: u64 },
    #[error("config drive on {}: the {table} partition table has no free entry for config-2", path.display())]
    TableFull { path: PathBuf, table: TableKind },
    #[error("config drive: {0:?} is not a relative path of plain names")]
    BadPath(String),
    #[error("config drive: {0} bytes of files do not fit (at most {MAX_CONTENT})")]
    TooBig(usize),
    #[error("config drive: building the FAT filesystem: {0}")]
    Fat(String),
}

impl Error {
    /// What the host decides on: the disk failed or is too small for the image and the drive; the
    /// image brought no table that can take the partition; the files the host sent are wrong.
    pub fn kind(&self) -> AgentFailureKind {
        match self {
            Error::Io { .. } | Error::NoRoom { .. } => AgentFailureKind::Disk,
            Error::NoTable { .. } | Error::TableFull { .. } => AgentFailureKind::Verify,
            Error::BadPath(_) | Error::TooBig(_) | Error::Fat(_) => AgentFailureKind::Other,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    Gpt,
    Mbr,
}

impl std::fmt::Display for TableKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TableKind::Gpt => "GPT",
            TableKind::Mbr => "MBR",
        })
    }
}

/// Where the config drive went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub table: TableKind,
    /// The partition's number (1-based, as Linux names it: `/dev/sda3`).
    pub number: u32,
    /// Its first byte on the disk and its length in bytes.
    pub start: u64,
    pub len: u64,
    /// An earlier `config-2` partition was there and is gone.
    pub replaced: bool,
}

impl Written {
    pub fn summary(&self) -> String {
        format!(
            "config drive written: {} partition {} at byte {}, {} MiB{}",
            self.table,
            self.number,
            self.start,
            self.len >> 20,
            if self.replaced { ", replacing the earlier one" } else { "" }
        )
    }
}

/// Adds (or replaces) the `config-2` partition on `disk` (a block device, or a file standing in
/// for one) holding `files` (`("openstack/latest/meta_data.json", bytes)`, ...). Call it after the
/// image is written and synced. Nothing is written unless all of it can be.
pub fn write(disk: &Path, files: &[(&str, &[u8])]) -> Result<Written, Error> {
    let table::Changes { written, writes, .. } = plan(disk, files)?;
    let io_err = |source| Error::Io { path: disk.to_owned(), source };
    let target = std::fs::OpenOptions::new().write(true).open(disk).map_err(io_err)?;
    for (offset, bytes) in &writes {
        target.write_all_at(bytes, *offset).map_err(io_err)?;
    }
    target.sync_all().map_err(io_err)?;
    Ok(written)
}

/// Every byte to write, in order: the filesystem first, the tables that point at it last.
fn plan(disk: &Path, files: &[(&str, &[u8])]) -> Result<table::Changes, Error> {
    let io_err = |source| Error::Io { path: disk.to_owned(), source };
    let file = File::open(disk).map_err(io_err)?;
    // The tables are read as the disk holds them, not as the kernel cached them at boot (the
    // image's O_DIRECT writes should have dropped those pages; this makes sure).
    if let Err(e) = crate::sys::drop_cached_pages(&file) {
        crate::log(format!("config drive: {} may be read from the page cache: {e}", disk.display()));
    }
    let capacity = crate::disk_io::capacity(disk).map_err(io_err)?.unwrap_or(0);
    // Derived from the content, so a run repeated with the same files writes the same bytes.
    let mut seed = Sha256::new();
    for (path, data) in files {
        seed.update((path.len() as u64).to_le_bytes());
        seed.update(path.as_bytes());
        seed.update((data.len() as u64).to_le_bytes());
        seed.update(data);
    }
    let seed: [u8; 32] = seed.finalize().into();
    let volume_id = u32::from_le_bytes([seed[16], seed[17], seed[18], seed[19]]);
    let changes = table::plan(&file, disk, capacity, SIZE, &seed)?;
    let hidden = u32::try_from(changes.written.start / changes.sector_size).unwrap_or(u32::MAX);
    let image = fat::build(files, SIZE, changes.sector_size as usize, volume_id, hidden)?;
    let mut writes = vec![(changes.written.start, image)];
    writes.extend(changes.writes);
    Ok(table::Changes { writes, ..changes })
}
