//! The qcow2 format (QEMU's docs/interop/qcow2.txt), only as far as reading an image needs: the
//! header and its extensions, L1 and L2 entries, and the checks that make a file safe to stream:
//! nothing read from another file, every table inside this one and apart from the others, sizes
//! that bound the reader's memory.

use crate::Refusal;

/// Offsets in L1 and standard L2 entries: bits 9..=55.
const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
/// L1 entries: bit 63 (copied) and the offset; the rest reserved.
const L1_RESERVED: u64 = !(OFFSET_MASK | 1 << 63);
/// Standard L2 entries: bit 63 (copied), bit 0 (reads as zeros) and the offset.
const L2_RESERVED: u64 = !(OFFSET_MASK | 1 << 63 | 1);
const COMPRESSED: u64 = 1 << 62;

/// A reader holds the L1 table whole: at most 8 MiB of it.
pub const MAX_L1_ENTRIES: u64 = 1 << 20;
/// Far more than any real image has; each costs a table read.
pub const MAX_SNAPSHOTS: u32 = 1024;

const INCOMPAT_DIRTY: u64 = 1;
const INCOMPAT_CORRUPT: u64 = 1 << 1;
const INCOMPAT_DATA_FILE: u64 = 1 << 2;
const INCOMPAT_COMPRESSION: u64 = 1 << 3;
const INCOMPAT_EXTL2: u64 = 1 << 4;
const INCOMPAT_KNOWN: u64 = INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2;

const EXT_END: u32 = 0;
const EXT_DATA_FILE: u32 = 0x4441_5441;
const EXT_CRYPTO: u32 = 0x0537_be77;

/// How compressed clusters are compressed (one choice per image).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterCompression {
    /// Raw deflate, no zlib header (QEMU's "zlib").
    Deflate,
    Zstd,
}

/// The header fields a reader uses, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub version: u32,
    pub cluster_bits: u32,
    pub virtual_size: u64,
    pub l1_entries: u64,
    pub l1_offset: u64,
    pub refcount_table_offset: u64,
    pub refcount_table_clusters: u64,
    pub snapshots: u32,
    pub snapshots_offset: u64,
    pub compression: ClusterCompression,
}

fn be32(b: &[u8], at: usize) -> Result<u32, Refusal> {
    b.get(at..at + 4).map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]])).ok_or_else(|| Refusal::Malformed(format!("header cut at byte {at}")))
}

fn be64(b: &[u8], at: usize) -> Result<u64, Refusal> {
    let s = b.get(at..at + 8).ok_or_else(|| Refusal::Malformed(format!("header cut at byte {at}")))?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Ok(u64::from_be_bytes(a))
}

/// `[offset, offset + len)` must lie inside a file of `file_size` bytes.
pub fn inside(what: impl Into<String>, offset: u64, len: u64, file_size: u64) -> Result<(), Refusal> {
    match offset.checked_add(len) {
        Some(end) if end <= file_size => Ok(()),
        _ => Err(Refusal::PastEnd { what: what.into(), offset, len, file_size }),
    }
}

impl Header {
    /// Parses and checks the header from the file's first bytes ([`crate::HEAD_LEN`] of them, or
    /// the whole file if shorter).
    pub fn parse(head: &[u8], file_size: u64) -> Result<Header, Refusal> {
        if !head.starts_with(b"QFI\xfb") {
            return Err(Refusal::Malformed("no qcow2 magic".into()));
        }
        let version = be32(head, 4)?;
        if version != 2 && version != 3 {
            return Err(Refusal::Version(version));
        }
        let cluster_bits = be32(head, 20)?;
        if !(9..=21).contains(&cluster_bits) {
            return Err(Refusal::ClusterBits(cluster_bits));
        }
        let cluster = 1u64 << cluster_bits;
        let backing_offset = be64(head, 8)?;
        let backing_len = be32(head, 16)? as usize;
        if backing_offset != 0 {
            let name = usize::try_from(backing_offset)
                .ok()
                .and_then(|at| head.get(at..at.checked_add(backing_len.min(1023))?))
                .map_or_else(|| "its name lies outside the header".to_owned(), |n| String::from_utf8_lossy(n).into_owned());
            return Err(Refusal::BackingFile(name));
        }
        match be32(head, 32)? {
            0 => {}
            1 => return Err(Refusal::Encrypted("AES")),
            2 => return Err(Refusal::Encrypted("LUKS")),
            other => return Err(Refusal::Malformed(format!("unknown encryption method {other}"))),
        }
        let (incompatible, header_len) = if version == 3 { (be64(head, 72)?, be32(head, 100)? as usize) } else { (0, 72) };
        if incompatible & INCOMPAT_CORRUPT != 0 {
            return Err(Refusal::Corrupt);
        }
        if incompatible & INCOMPAT_DATA_FILE != 0 {
            return Err(Refusal::ExternalDataFile);
        }
        if incompatible & INCOMPAT_EXTL2 != 0 {
            return Err(Refusal::ExtendedL2);
        }
        if incompatible & !INCOMPAT_KNOWN != 0 {
            return Err(Refusal::UnknownFeatures(incompatible & !INCOMPAT_KNOWN));
        }
        if header_len < 72 || header_len as u64 > cluster {
            return Err(Refusal::Malformed(format!("header length {header_len}")));
        }
        let compression = match (incompatible & INCOMPAT_COMPRESSION != 0, header_len > 104) {
            (true, true) => match head.get(104).copied().unwrap_or(0) {
                0 => ClusterCompression::Deflate,
                1 => ClusterCompression::Zstd,
                other => return Err(Refusal::CompressionType(other)),
            },
            (true, false) => return Err(Refusal::Malformed("compression type bit set without the field".into())),
            (false, _) => ClusterCompression::Deflate,
        };
        check_extensions(head, header_len, cluster)?;
        let header = Header {
            version,
            cluster_bits,
            virtual_size: be64(head, 24)?,
            l1_entries: be32(head, 36)? as u64,
            l1_offset: be64(head, 40)?,
            refcount_table_offset: be64(head, 48)?,
            refcount_table_clusters: be32(head, 56)? as u64,
            snapshots: be32(head, 60)?,
            snapshots_offset: be64(head, 64)?,
            compression,
        };
        header.check_sizes(file_size)?;
        Ok(header)
    }

    pub fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }

    /// Entries in one L2 table.
    pub fn l2_entries(&self) -> u64 {
        self.cluster_size() / 8
    }

    /// Guest bytes one L2 table maps.
    pub fn l2_span(&self) -> u64 {
        self.cluster_size() * self.l2_entries()
    }

    fn check_sizes(&self, file_size: u64) -> Result<(), Refusal> {
        let cluster = self.cluster_size();
        if self.l1_entries > MAX_L1_ENTRIES {
            return Err(Refusal::TooLarge { what: "L1 table", value: self.l1_entries, max: MAX_L1_ENTRIES });
        }
        let needed = self.virtual_size.div_ceil(self.l2_span());
        if needed > self.l1_entries {
            let why = format!("its L1 table has {} entries, {needed} needed", self.l1_entries);
            return Err(Refusal::VirtualSize { virtual_size: self.virtual_size, why });
        }
        if self.snapshots > MAX_SNAPSHOTS {
            return Err(Refusal::TooLarge { what: "snapshot count", value: self.snapshots as u64, max: MAX_SNAPSHOTS as u64 });
        }
        for (what, offset) in
            [("L1 table", self.l1_offset), ("refcount table", self.refcount_table_offset), ("snapshot table", self.snapshots_offset)]
        {
            let unused = offset == 0 && (what == "snapshot table" && self.snapshots == 0 || what == "L1 table" && self.l1_entries == 0);
            if !unused && !offset.is_multiple_of(cluster) {
                return Err(Refusal::Unaligned { what: what.into(), offset });
            }
        }
        if self.l1_entries > 0 {
            inside("L1 table", self.l1_offset, self.l1_entries * 8, file_size)?;
        }
        let refcount_len = self.refcount_table_clusters.saturating_mul(cluster);
        inside("refcount table", self.refcount_table_offset, refcount_len, file_size)?;
        if self.snapshots > 0 {
            inside("snapshot table", self.snapshots_offset, 40, file_size)?;
        }
        Ok(())
    }
}

/// Header extensions live between the header and the end of the first cluster; refuses the
/// ones that name other files or keys. Extensions past [`crate::HEAD_LEN`] are malformed here.
fn check_extensions(head: &[u8], header_len: usize, cluster: u64) -> Result<(), Refusal> {
    let end = (cluster as usize).min(head.len());
    let mut at = header_len.next_multiple_of(8);
    loop {
        if at + 8 > end {
            return Err(Refusal::Malformed("header extensions run past the first cluster".into()));
        }
        let (kind, len) = (be32(head, at)?, be32(head, at + 4)? as usize);
        match kind {
            EXT_END => return Ok(()),
            EXT_DATA_FILE => return Err(Refusal::ExternalDataFile),
            EXT_CRYPTO => return Err(Refusal::Encrypted("LUKS")),
            _ => {}
        }
        at = at + 8 + len.next_multiple_of(8);
    }
}

/// The L1 table's entries as L2 table offsets (0: that part of the disk is all zeros).
pub fn l1_table(h: &Header, bytes: &[u8]) -> Result<Vec<u64>, Refusal> {
    bytes
        .chunks_exact(8)
        .take(h.l1_entries as usize)
        .map(|c| {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            let entry = u64::from_be_bytes(a);
            if entry & L1_RESERVED != 0 {
                return Err(Refusal::Reserved { what: "L1 table".into(), entry });
            }
            let offset = entry & OFFSET_MASK;
            if !offset.is_multiple_of(h.cluster_size()) {
                return Err(Refusal::Unaligned { what: "L2 table".into(), offset });
            }
            Ok(offset)
        })
        .collect()
}

/// Where one guest cluster's bytes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cluster {
    /// Unallocated or marked zero: reads as zeros (an image without a backing file).
    Zero,
    /// A whole cluster stored as is.
    Data { offset: u64 },
    /// Compressed; `len` bytes at most (QEMU's sector-count bound, cut at the end of the file).
    Compressed { offset: u64, len: u64 },
}

/// Decodes one L2 entry, refusing reserved bits and data outside the file.
pub fn l2_entry(h: &Header, entry: u64, file_size: u64) -> Result<Cluster, Refusal> {
    let cluster = h.cluster_size();
    if entry & COMPRESSED != 0 {
        // Bits 0..x-1 are the offset, x..61 the count of further 512-byte sectors.
        let x = 62 - (h.cluster_bits - 8);
        let offset = entry & ((1u64 << x) - 1);
        let sectors = ((entry >> x) & ((1u64 << (62 - x)) - 1)) + 1;
        let len = (sectors * 512 - (offset & 511)).min(file_size.saturating_sub(offset));
        if offset >= file_size || len == 0 {
            return Err(Refusal::PastEnd { what: "compressed cluster".into(), offset, len: sectors * 512, file_size });
        }
        return Ok(Cluster::Compressed { offset, len });
    }
    if entry & L2_RESERVED != 0 {
        return Err(Refusal::Reserved { what: "L2 table".into(), entry });
    }
    let offset = entry & OFFSET_MASK;
    if entry & 1 != 0 || offset == 0 {
        return Ok(Cluster::Zero);
    }
    if !offset.is_multiple_of(cluster) {
        return Err(Refusal::Unaligned { what: "data cluster".into(), offset });
    }
    inside("data cluster", offset, cluster, file_size)?;
    Ok(Cluster::Data { offset })
}

/// Decodes a whole L2 table read from the file.
pub fn l2_table(h: &Header, bytes: &[u8], file_size: u64) -> Result<Vec<Cluster>, Refusal> {
    bytes
        .chunks_exact(8)
        .map(|c| {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            l2_entry(h, u64::from_be_bytes(a), file_size)
        })
        .collect()
}

/// One table's place in the file, for the overlap check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extent {
    pub what: String,
    pub offset: u64,
    pub len: u64,
}

/// Every table must be inside the file and no two may share a byte: a hostile file could
/// otherwise make a table describe itself or another one (QEMU's overlap checks refuse the same).
pub fn check_extents(mut extents: Vec<Extent>, file_size: u64) -> Result<(), Refusal> {
    for e in &extents {
        inside(e.what.clone(), e.offset, e.len, file_size)?;
    }
    extents.sort_by_key(|e| (e.offset, e.len));
    for pair in extents.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if a.offset + a.len > b.offset {
            return Err(Refusal::Overlap { a: format!("{} (byte {})", a.what, a.offset), b: format!("{} (byte {})", b.what, b.offset) });
        }
    }
    Ok(())
}

/// The tables the header and L1 name: header cluster, L1, refcount table, and each L2 table.
pub fn table_extents(h: &Header, l1: &[u64]) -> Vec<Extent> {
    let cluster = h.cluster_size();
    let mut extents = vec![
        Extent { what: "header".into(), offset: 0, len: cluster },
        Extent { what: "L1 table".into(), offset: h.l1_offset, len: h.l1_entries * 8 },
        Extent { what: "refcount table".into(), offset: h.refcount_table_offset, len: h.refcount_table_clusters * cluster },
    ];
    extents.retain(|e| e.len > 0);
    for (i, offset) in l1.iter().enumerate().filter(|(_, o)| **o != 0) {
        extents.push(Extent { what: format!("L2 table {i}"), offset: *offset, len: cluster });
    }
    extents
}

/// One entry of the snapshot table: its L1 table, and how long the entry is.
pub fn snapshot_entry(bytes: &[u8]) -> Result<(u64, u64, u64), Refusal> {
    let l1_offset = be64(bytes, 0)?;
    let l1_entries = be32(bytes, 8)? as u64;
    let id_len = u16::from_be_bytes([bytes[12], bytes[13]]) as u64;
    let name_len = u16::from_be_bytes([bytes[14], bytes[15]]) as u64;
    let extra = be32(bytes, 36)? as u64;
    if extra > 1024 {
        return Err(Refusal::TooLarge { what: "snapshot extra data", value: extra, max: 1024 });
    }
    Ok((l1_offset, l1_entries, (40 + extra + id_len + name_len).next_multiple_of(8)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A v3 header as qemu-img writes one: 64 KiB clusters, L1 at cluster 3.
    fn header(virtual_size: u64) -> Vec<u8> {
        let mut h = vec![0u8; 4096];
        h[..4].copy_from_slice(b"QFI\xfb");
        h[4..8].copy_from_slice(&3u32.to_be_bytes());
        h[20..24].copy_from_slice(&16u32.to_be_bytes());
        h[24..32].copy_from_slice(&virtual_size.to_be_bytes());
        h[36..40].copy_from_slice(&(virtual_size.div_ceil(512 << 20) as u32).to_be_bytes());
        h[40..48].copy_from_slice(&(3u64 << 16).to_be_bytes());
        h[48..56].copy_from_slice(&(1u64 << 16).to_be_bytes());
        h[56..60].copy_from_slice(&1u32.to_be_bytes());
        h[96..100].copy_from_slice(&4u32.to_be_bytes());
        h[100..104].copy_from_slice(&112u32.to_be_bytes());
        h
    }

    const FILE: u64 = 1 << 20;

    #[test]
    fn a_plain_header_parses() {
        let h = Header::parse(&header(1 << 30), FILE).unwrap();
        assert_eq!((h.version, h.cluster_size(), h.virtual_size, h.l1_entries), (3, 65536, 1 << 30, 2));
        assert_eq!(h.compression, ClusterCompression::Deflate);
        assert_eq!(h.l2_span(), 512 << 20);
    }

    #[test]
    fn hostile_headers_are_refused_with_their_reason() {
        let set = |at: usize, bytes: &[u8]| {
            let mut h = header(1 << 30);
            h[at..at + bytes.len()].copy_from_slice(bytes);
            Header::parse(&h, FILE).unwrap_err()
        };
        let mut backing = header(1 << 30);
        backing[8..16].copy_from_slice(&200u64.to_be_bytes());
        backing[16..20].copy_from_slice(&9u32.to_be_bytes());
        backing[200..209].copy_from_slice(b"/etc/shad");
        assert_eq!(Header::parse(&backing, FILE).unwrap_err(), Refusal::BackingFile("/etc/shad".into()));
        assert_eq!(set(32, &2u32.to_be_bytes()), Refusal::Encrypted("LUKS"));
        assert_eq!(set(79, &[4]), Refusal::ExternalDataFile);
        assert_eq!(set(79, &[2]), Refusal::Corrupt);
        assert_eq!(set(79, &[16]), Refusal::ExtendedL2);
        assert_eq!(set(72, &[1]), Refusal::UnknownFeatures(1 << 56));
        assert_eq!(set(4, &4u32.to_be_bytes()), Refusal::Version(4));
        assert_eq!(set(20, &22u32.to_be_bytes()), Refusal::ClusterBits(22));
        assert!(matches!(set(36, &1u32.to_be_bytes()), Refusal::VirtualSize { .. }));
        assert!(matches!(set(36, &(2u32 << 20).to_be_bytes()), Refusal::TooLarge { what: "L1 table", .. }));
        assert!(matches!(set(40, &(FILE).to_be_bytes()), Refusal::PastEnd { .. }));
        assert!(matches!(set(40, &(100u64).to_be_bytes()), Refusal::Unaligned { .. }));
        // An external data file named by an extension alone is refused too.
        let mut ext = header(1 << 30);
        ext[112..116].copy_from_slice(&EXT_DATA_FILE.to_be_bytes());
        assert_eq!(Header::parse(&ext, FILE).unwrap_err(), Refusal::ExternalDataFile);
    }

    #[test]
    fn l2_entries_decode_and_bad_ones_are_refused() {
        let h = Header::parse(&header(1 << 30), FILE).unwrap();
        assert_eq!(l2_entry(&h, 0, FILE), Ok(Cluster::Zero));
        assert_eq!(l2_entry(&h, 1 << 63 | 5 << 16 | 1, FILE), Ok(Cluster::Zero));
        assert_eq!(l2_entry(&h, 1 << 63 | 5 << 16, FILE), Ok(Cluster::Data { offset: 5 << 16 }));
        assert!(matches!(l2_entry(&h, 16 << 16, FILE), Err(Refusal::PastEnd { .. })));
        assert!(matches!(l2_entry(&h, 5 << 16 | 2, FILE), Err(Refusal::Reserved { .. })));
        // 64 KiB clusters: x = 54; 3 further sectors, offset 1000.
        let c = COMPRESSED | 3 << 54 | 1000;
        assert_eq!(l2_entry(&h, c, FILE), Ok(Cluster::Compressed { offset: 1000, len: 4 * 512 - 1000 % 512 }));
        assert_eq!(l2_entry(&h, c, 1100), Ok(Cluster::Compressed { offset: 1000, len: 100 }), "cut at the end of the file");
    }

    #[test]
    fn overlapping_or_outside_tables_are_refused() {
        let e = |what: &str, offset, len| Extent { what: what.into(), offset, len };
        assert_eq!(check_extents(vec![e("a", 0, 10), e("b", 10, 10)], 20), Ok(()));
        assert!(matches!(check_extents(vec![e("a", 0, 10), e("b", 9, 10)], 20), Err(Refusal::Overlap { .. })));
        assert!(matches!(check_extents(vec![e("a", 15, 10)], 20), Err(Refusal::PastEnd { .. })));
    }
}
