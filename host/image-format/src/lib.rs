//! Disk image formats (ARCHITECTURE.md, "image-format"): what a file really is from its first
//! bytes, and for qcow2 whether it is safe to stream to a disk. Shared by the host (inspection
//! when an image is added) and the agent (the same checks again before it writes), so both refuse
//! the same files for the same reasons. Pure: the caller does the reading through [`ReadAt`].

mod inspect;
pub mod qcow2;
mod sniff;

pub use inspect::{Failed, Inspected, ReadAt, Stats, inspect, inspect_qcow2};
pub use sniff::{Detected, Foreign, sniff, sniff_tail};

/// How many leading bytes [`sniff`] and the qcow2 header parser look at.
pub const HEAD_LEN: usize = 64 * 1024;

/// Why a file is refused. The text is what the operator sees, so each says what was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0} images are not supported: convert it to raw or qcow2 first")]
    Foreign(Foreign),
    #[error("qcow2 version {0} is not supported (only 2 and 3)")]
    Version(u32),
    #[error("the qcow2 header is truncated or malformed: {0}")]
    Malformed(String),
    #[error("qcow2 with a backing file ({0:?}): the image must be self-contained")]
    BackingFile(String),
    #[error("qcow2 with an external data file: its data would be read from another file")]
    ExternalDataFile,
    #[error("encrypted qcow2 ({0}): metalhost cannot decrypt it")]
    Encrypted(&'static str),
    #[error("qcow2 marked corrupt by QEMU")]
    Corrupt,
    #[error("qcow2 with unknown incompatible features {0:#x}")]
    UnknownFeatures(u64),
    #[error("qcow2 with extended L2 entries (subclusters) is not supported")]
    ExtendedL2,
    #[error("qcow2 cluster compression type {0} is unknown")]
    CompressionType(u8),
    #[error("qcow2 cluster size 2^{0} is outside 512 B..2 MiB")]
    ClusterBits(u32),
    #[error("qcow2 virtual size {virtual_size} does not fit: {why}")]
    VirtualSize { virtual_size: u64, why: String },
    #[error("qcow2 {what} at byte {offset} (+{len}) lies past the end of the file ({file_size} bytes)")]
    PastEnd { what: String, offset: u64, len: u64, file_size: u64 },
    #[error("qcow2 {what} at byte {offset} is not aligned to a cluster")]
    Unaligned { what: String, offset: u64 },
    #[error("qcow2 {a} and {b} overlap")]
    Overlap { a: String, b: String },
    #[error("qcow2 {what}: reserved bits set in entry {entry:#x}")]
    Reserved { what: String, entry: u64 },
    #[error("qcow2 {what} is too large ({value}, at most {max})")]
    TooLarge { what: &'static str, value: u64, max: u64 },
}
