//! Inspection: reads what it needs of a file through [`ReadAt`] (a local file on the host, HTTP
//! Range requests for a URL or in the agent) and returns the verdict: the format, the virtual
//! size, a one-line summary, or the [`Refusal`].

use crate::qcow2::{self, Cluster, ClusterCompression, Extent, Header};
use crate::{Detected, HEAD_LEN, Refusal, sniff, sniff_tail};

/// Positioned reads of exactly `buf.len()` bytes.
pub trait ReadAt {
    type Error;
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Self::Error>;
}

/// A refusal, or the reader's own failure (which says nothing about the image).
#[derive(Debug)]
pub enum Failed<E> {
    Refused(Refusal),
    Read(E),
}

impl<E> From<Refusal> for Failed<E> {
    fn from(r: Refusal) -> Self {
        Failed::Refused(r)
    }
}

/// An accepted image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    /// `raw` or `qcow2`.
    pub qcow2: Option<Header>,
    /// The bytes the image puts on a disk.
    pub virtual_size: u64,
    /// What was found, for the operator (`image show`).
    pub summary: String,
}

fn read<R: ReadAt>(r: &mut R, offset: u64, len: u64) -> Result<Vec<u8>, Failed<R::Error>> {
    let mut buf = vec![0u8; len as usize];
    r.read_at(offset, &mut buf).map_err(Failed::Read)?;
    Ok(buf)
}

/// Inspects an uncompressed image file of `file_size` bytes: raw or qcow2, and a qcow2 down to
/// every L2 entry when `check_l2`.
pub fn inspect<R: ReadAt>(r: &mut R, file_size: u64, check_l2: bool) -> Result<Inspected, Failed<R::Error>> {
    let head = read(r, 0, file_size.min(HEAD_LEN as u64))?;
    match sniff(&head) {
        Detected::Foreign(f) => Err(Refusal::Foreign(f).into()),
        Detected::Qcow2 { .. } => {
            let (header, _l1, stats) = inspect_qcow2(r, &head, file_size, check_l2)?;
            let summary = summary(&header, stats);
            Ok(Inspected { virtual_size: header.virtual_size, qcow2: Some(header), summary })
        }
        Detected::Raw => {
            if file_size >= 1024 {
                let tail = read(r, file_size - 1024, 1024)?;
                if let Some(f) = sniff_tail(&tail) {
                    return Err(Refusal::Foreign(f).into());
                }
            }
            Ok(Inspected { qcow2: None, virtual_size: file_size, summary: format!("raw, {}", size(file_size)) })
        }
    }
}

/// What the L2 tables hold, when they were read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub data: u64,
    pub compressed: u64,
    pub checked_l2: bool,
}

/// The qcow2 checks on a file whose first bytes are `head`: the header, the L1 table, every
/// table inside the file and apart from the others (snapshots' tables included), and with
/// `check_l2` every L2 entry. Returns the header and the L1 table (L2 offsets).
pub fn inspect_qcow2<R: ReadAt>(r: &mut R, head: &[u8], file_size: u64, check_l2: bool) -> Result<(Header, Vec<u64>, Stats), Failed<R::Error>> {
    let header = Header::parse(head, file_size)?;
    let l1 = qcow2::l1_table(&header, &read(r, header.l1_offset, header.l1_entries * 8)?)?;
    let mut extents = qcow2::table_extents(&header, &l1);
    let mut at = header.snapshots_offset;
    for i in 0..header.snapshots {
        qcow2::inside("snapshot table", at, 40, file_size)?;
        let (l1_offset, l1_entries, len) = qcow2::snapshot_entry(&read(r, at, 40)?)?;
        extents.push(Extent { what: format!("snapshot {i}"), offset: at, len });
        if l1_entries > qcow2::MAX_L1_ENTRIES {
            return Err(Refusal::TooLarge { what: "snapshot L1 table", value: l1_entries, max: qcow2::MAX_L1_ENTRIES }.into());
        }
        if l1_entries > 0 {
            extents.push(Extent { what: format!("snapshot {i}'s L1 table"), offset: l1_offset, len: l1_entries * 8 });
        }
        at = at.checked_add(len).ok_or_else(|| Refusal::Malformed("snapshot table wraps".into()))?;
    }
    qcow2::check_extents(extents, file_size)?;
    let mut stats = Stats { checked_l2: check_l2, ..Stats::default() };
    if check_l2 {
        for offset in l1.iter().filter(|o| **o != 0) {
            for cluster in qcow2::l2_table(&header, &read(r, *offset, header.cluster_size())?, file_size)? {
                match cluster {
                    Cluster::Data { .. } => stats.data += 1,
                    Cluster::Compressed { .. } => stats.compressed += 1,
                    Cluster::Zero => {}
                }
            }
        }
    }
    Ok((header, l1, stats))
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b => format!("{b} bytes"),
    }
}

fn summary(h: &Header, s: Stats) -> String {
    let mut text = format!("qcow2 v{}, virtual size {}, {} KiB clusters", h.version, size(h.virtual_size), h.cluster_size() >> 10);
    if s.checked_l2 {
        let allocated = (s.data + s.compressed) * h.cluster_size();
        text += &format!(", {} allocated", size(allocated));
        if s.compressed > 0 {
            let how = match h.compression {
                ClusterCompression::Deflate => "zlib",
                ClusterCompression::Zstd => "zstd",
            };
            text += &format!(" ({} clusters {how}-compressed)", s.compressed);
        }
    }
    if h.snapshots > 0 {
        text += &format!(", {} internal snapshot(s)", h.snapshots);
    }
    text + "; no backing file, no external data file, not encrypted, tables inside the file and apart"
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Bytes(Vec<u8>);
    impl ReadAt for Bytes {
        type Error = String;
        fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), String> {
            let at = offset as usize;
            let src = self.0.get(at..at + buf.len()).ok_or("past the end")?;
            buf.copy_from_slice(src);
            Ok(())
        }
    }

    #[test]
    fn raw_files_are_raw_unless_a_footer_says_vhd() {
        let mut disk = vec![0u8; 4096];
        let got = inspect(&mut Bytes(disk.clone()), 4096, true).unwrap();
        assert_eq!((got.qcow2, got.virtual_size, got.summary.as_str()), (None, 4096, "raw, 4096 bytes"));
        disk[4096 - 512..4096 - 504].copy_from_slice(b"conectix");
        assert!(matches!(inspect(&mut Bytes(disk), 4096, true), Err(Failed::Refused(Refusal::Foreign(crate::Foreign::Vhd)))));
    }
}
