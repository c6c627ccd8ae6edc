//! The agent's errors. Their `Display` text is what the host records as the task's failure
//! message, so each says what was being done, to what, and what went wrong.

use std::io;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no disk to write to: {0}")]
    NoDisk(String),
    #[error("open {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("the image does not fit on {}: no space left at byte {offset}", path.display())]
    NoSpace { path: PathBuf, offset: u64 },
    #[error("write {} at byte {offset}: {source}", path.display())]
    Write { path: PathBuf, offset: u64, source: io::Error },
    #[error("fsync {}: {source}", path.display())]
    Sync { path: PathBuf, source: io::Error },
    #[error("downloading the image: {0}")]
    Download(String),
    #[error("decompressing the image ({compression}) at stored byte {stored_offset}: {source}")]
    Decompress { compression: &'static str, stored_offset: u64, source: io::Error },
    #[error("sha256 mismatch: expected {expected}, got {got} ({bytes} bytes downloaded)")]
    Sha256Mismatch { expected: String, got: String, bytes: u64 },
    #[error("read back {}: {source}", path.display())]
    ReadBack { path: PathBuf, source: io::Error },
    #[error("read-back mismatch on {}: wrote sha256 {wrote}, read {read}", path.display())]
    ReadBackMismatch { path: PathBuf, wrote: String, read: String },
    #[error("cleaning {}: {source}", path.display())]
    Clean { path: PathBuf, source: io::Error },
    #[error("{0}")]
    Report(String),
    #[error("internal: {0}")]
    Internal(&'static str),
}
