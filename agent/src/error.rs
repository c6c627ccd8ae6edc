//! The agent's errors. Their `Display` text is what the host records as the task's failure
//! message, so each says what was being done, to what, and what went wrong; their [`Error::kind`]
//! is the fact the host decides on.

use std::io;
use std::path::PathBuf;

use metalhost_wire::AgentFailureKind;

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
    #[error("image refused: {0}")]
    Refused(String),
    #[error("converting the qcow2 image at stored byte {stored_offset}: {source}")]
    Qcow2 { stored_offset: u64, source: io::Error },
    #[error("sha256 mismatch: expected {expected}, got {got} ({bytes} bytes downloaded)")]
    Sha256Mismatch { expected: String, got: String, bytes: u64 },
    #[error("read back {}: {source}", path.display())]
    ReadBack { path: PathBuf, source: io::Error },
    #[error("read-back mismatch on {}: wrote sha256 {wrote}, read {read}", path.display())]
    ReadBackMismatch { path: PathBuf, wrote: String, read: String },
    #[error("cleaning {}: {source}", path.display())]
    Clean { path: PathBuf, source: io::Error },
    #[error(transparent)]
    ConfigDrive(#[from] crate::config_drive::Error),
    #[error("{0}")]
    Report(String),
    #[error("internal: {0}")]
    Internal(&'static str),
}

impl Error {
    /// The kind of failure the task result carries: a download may work another time, a disk
    /// or an image that failed its checks will fail the same way again.
    pub fn kind(&self) -> AgentFailureKind {
        match self {
            Error::Download(_) => AgentFailureKind::Download,
            Error::NoDisk(_)
            | Error::Open { .. }
            | Error::NoSpace { .. }
            | Error::Write { .. }
            | Error::Sync { .. }
            | Error::ReadBack { .. }
            | Error::Clean { .. } => AgentFailureKind::Disk,
            Error::Decompress { .. } | Error::Refused(_) | Error::Qcow2 { .. } | Error::Sha256Mismatch { .. } | Error::ReadBackMismatch { .. } => {
                AgentFailureKind::Verify
            }
            Error::ConfigDrive(e) => e.kind(),
            Error::Report(_) | Error::Internal(_) => AgentFailureKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downloads_disks_and_checks_each_have_their_kind() {
        let path = || PathBuf::from("/dev/vda");
        let io = || io::Error::other("boom");
        let cases = [
            (Error::Download("gave up at byte 5 after 6 attempts: connection refused".into()), AgentFailureKind::Download),
            (Error::NoDisk("no disk to clean".into()), AgentFailureKind::Disk),
            (Error::Open { path: path(), source: io() }, AgentFailureKind::Disk),
            (Error::NoSpace { path: path(), offset: 7 }, AgentFailureKind::Disk),
            (Error::Write { path: path(), offset: 7, source: io() }, AgentFailureKind::Disk),
            (Error::Sync { path: path(), source: io() }, AgentFailureKind::Disk),
            (Error::ReadBack { path: path(), source: io() }, AgentFailureKind::Disk),
            (Error::Clean { path: path(), source: io() }, AgentFailureKind::Disk),
            (Error::Decompress { compression: "zstd", stored_offset: 9, source: io() }, AgentFailureKind::Verify),
            (Error::Refused("qcow2 with a backing file".into()), AgentFailureKind::Verify),
            (Error::Qcow2 { stored_offset: 9, source: io() }, AgentFailureKind::Verify),
            (Error::Sha256Mismatch { expected: "aa".into(), got: "bb".into(), bytes: 2 }, AgentFailureKind::Verify),
            (Error::ReadBackMismatch { path: path(), wrote: "aa".into(), read: "bb".into() }, AgentFailureKind::Verify),
            (Error::ConfigDrive(crate::config_drive::Error::TooBig(1 << 30)), AgentFailureKind::Other),
            (Error::Report("inventory refused: HTTP 422: too big".into()), AgentFailureKind::Other),
            (Error::Internal("the writer stopped"), AgentFailureKind::Other),
        ];
        for (error, kind) in cases {
            assert_eq!(error.kind(), kind, "{error}");
        }
    }
}
