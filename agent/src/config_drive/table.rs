//! The partition table's side: find the table the image brought, drop an earlier `config-2`,
//! place the new one at the disk's end (1 MiB aligned), and compute the bytes that record it.
//!
//! GPT goes through `gptman` (headers and entry array checked against their CRCs, both copies
//! rewritten, the backup moved to the disk's real end: an image smaller than the disk leaves it
//! in the middle). MBR is one 16-byte entry in sector 0, written here; so is the protective
//! MBR's size on GPT, patched in place so a hybrid MBR's other entries and boot code stay.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use gptman::{GPT, GPTPartitionEntry};

use super::{Error, LABEL, TableKind, Written, fat};

/// Partitions start on 1 MiB boundaries, as every partitioning tool does today.
const ALIGN: u64 = 1 << 20;
/// Microsoft basic data, `EBD0A0A2-B9E5-4433-87C0-68B6B72699C7`, as the GPT stores it (the
/// first three fields little-endian).
const BASIC_DATA: [u8; 16] = [0xA2, 0xA0, 0xD0, 0xEB, 0xE5, 0xB9, 0x33, 0x44, 0x87, 0xC0, 0x68, 0xB6, 0xB7, 0x26, 0x99, 0xC7];
/// W95 FAT16 (LBA): what the filesystem is.
const MBR_TYPE: u8 = 0x0E;
/// MBR types a FAT config drive may carry (from this agent or another tool).
const MBR_FAT_TYPES: [u8; 6] = [0x01, 0x04, 0x06, 0x0B, 0x0C, 0x0E];

pub struct Changes {
    pub written: Written,
    /// The table's sector size (the filesystem uses it too).
    pub sector_size: u64,
    /// (byte offset, bytes), in the order to write them.
    pub writes: Vec<(u64, Vec<u8>)>,
}

/// What to write for a `size`-byte config-2 partition on the disk `file` reads, `capacity` bytes.
pub fn plan(file: &File, path: &Path, capacity: u64, size: u64, seed: &[u8; 32]) -> Result<Changes, Error> {
    let io_err = |source| Error::Io { path: path.to_owned(), source };
    let mut head = vec![0u8; 4096 + 512];
    if capacity < head.len() as u64 {
        return Err(Error::NoTable { path: path.to_owned(), reason: format!("the disk holds only {capacity} bytes") });
    }
    file.read_exact_at(&mut head, 0).map_err(io_err)?;
    // The signature decides, not whatever a reader would fall back to: a disk that held a GPT
    // before may still have its backup header at the end under today's MBR image.
    for sector_size in [512u64, 4096] {
        if head[sector_size as usize..][..8] == *b"EFI PART" {
            return plan_gpt(file, path, capacity, sector_size, size, seed);
        }
    }
    plan_mbr(file, path, capacity, &head[..512], size)
}

fn plan_gpt(file: &File, path: &Path, capacity: u64, ss: u64, size: u64, seed: &[u8; 32]) -> Result<Changes, Error> {
    let bad = |reason: String| Error::NoTable { path: path.to_owned(), reason };
    let mut reader = file;
    let mut gpt = GPT::read_from(&mut reader, ss).map_err(|e| bad(format!("GPT: {e}")))?;
    if !gpt.header.is_primary() {
        // gptman falls back to the disk's last sector, which is not this image's backup.
        return Err(bad("GPT: the primary header is damaged".into()));
    }
    let sectors = capacity / ss;
    let old_backup = gpt.header.backup_lba;
    let array_sectors = (u64::from(gpt.header.number_of_partition_entries) * u64::from(gpt.header.size_of_partition_entry)).div_ceil(ss);
    if sectors < 2 * array_sectors + 3 {
        return Err(bad(format!("GPT: {sectors} sectors cannot hold its two copies")));
    }
    let mut recorder = Recorder::new(sectors * ss);
    gpt.header.update_from(&mut recorder, ss).map_err(|e| bad(format!("GPT: {e}")))?;

    let mut replaced = false;
    for (_, entry) in gpt.iter_mut() {
        if entry.is_used() && entry.partition_name.as_str().eq_ignore_ascii_case(LABEL) {
            *entry = GPTPartitionEntry::empty();
            replaced = true;
        }
    }
    // The first sector no partition uses, past the primary table.
    let used_end = gpt.iter().filter(|(_, e)| e.is_used()).map(|(_, e)| e.ending_lba + 1).max().unwrap_or(0).max(gpt.header.first_usable_lba);
    let no_room = || Error::NoRoom { path: path.to_owned(), used_end: used_end * ss, capacity };
    let start = (gpt.header.last_usable_lba + 1).checked_sub(size / ss).map(|s| s / (ALIGN / ss) * (ALIGN / ss)).ok_or_else(no_room)?;
    if start < used_end {
        return Err(no_room());
    }
    let number = gpt.iter().find(|(_, e)| e.is_unused()).map(|(i, _)| i).ok_or(Error::TableFull { path: path.to_owned(), table: TableKind::Gpt })?;
    gpt[number] = GPTPartitionEntry {
        partition_type_guid: BASIC_DATA,
        unique_partition_guid: guid(seed),
        starting_lba: start,
        ending_lba: start + size / ss - 1,
        attribute_bits: 0,
        partition_name: LABEL.into(),
    };

    // The image's own backup, now in the middle of the disk, is erased unless the new
    // partition covers it: only one backup header may say it is one.
    if old_backup != gpt.header.backup_lba && old_backup < sectors {
        let first = old_backup.saturating_sub(array_sectors);
        let overlaps = first < start + size / ss && old_backup >= start;
        let mut sector = vec![0u8; ss as usize];
        file.read_exact_at(&mut sector, old_backup * ss).map_err(|source| Error::Io { path: path.to_owned(), source })?;
        if !overlaps && first >= used_end && sector.starts_with(b"EFI PART") {
            recorder.writes.push((first * ss, vec![0u8; ((old_backup + 1 - first) * ss) as usize]));
        }
    }
    gpt.write_into(&mut recorder).map_err(|e| bad(format!("GPT: {e}")))?;
    recorder.writes.extend(protective_mbr_size(file, path, sectors)?);
    let written = Written { table: TableKind::Gpt, number, start: start * ss, len: size, replaced };
    Ok(Changes { written, sector_size: ss, writes: recorder.writes })
}

/// The protective MBR's 0xEE entry grown to the disk, as the GPT now is.
fn protective_mbr_size(file: &File, path: &Path, sectors: u64) -> Result<Option<(u64, Vec<u8>)>, Error> {
    let mut mbr = [0u8; 512];
    file.read_exact_at(&mut mbr, 0).map_err(|source| Error::Io { path: path.to_owned(), source })?;
    let size = u32::try_from(sectors - 1).unwrap_or(u32::MAX);
    Ok(entries(&mbr)
        .into_iter()
        .enumerate()
        .find(|(_, e)| e.kind == 0xEE && e.start == 1)
        .map(|(i, _)| (entry_offset(i) + 12, size.to_le_bytes().to_vec())))
}

#[derive(Debug, Clone, Copy)]
struct MbrEntry {
    status: u8,
    kind: u8,
    start: u64,
    sectors: u64,
}

fn entry_offset(i: usize) -> u64 {
    446 + 16 * i as u64
}

fn entries(mbr: &[u8]) -> [MbrEntry; 4] {
    std::array::from_fn(|i| {
        let e = &mbr[446 + 16 * i..][..16];
        let le = |at: usize| u64::from(u32::from_le_bytes([e[at], e[at + 1], e[at + 2], e[at + 3]]));
        MbrEntry { status: e[0], kind: e[4], start: le(8), sectors: le(12) }
    })
}

/// MBR in 512-byte sectors: an MBR does not say its sector size, and images are made with 512.
fn plan_mbr(file: &File, path: &Path, capacity: u64, mbr: &[u8], size: u64) -> Result<Changes, Error> {
    const SS: u64 = 512;
    let bad = |reason: &str| Error::NoTable { path: path.to_owned(), reason: reason.to_owned() };
    if mbr[510..512] != [0x55, 0xAA] {
        return Err(bad("neither a GPT nor an MBR signature"));
    }
    let sectors = capacity / SS;
    let table = entries(mbr);
    // A FAT boot sector or boot code also ends in 55 AA; a partition table's entries make sense.
    let sane = |e: &MbrEntry| e.status & 0x7F == 0 && (e.kind == 0 || (e.start >= 1 && e.sectors >= 1 && e.start + e.sectors <= sectors));
    if !table.iter().all(sane) || table.iter().all(|e| e.kind == 0) {
        return Err(bad("sector 0 is not a partition table"));
    }
    let mut replaced = Vec::new();
    for (i, e) in table.iter().enumerate() {
        if MBR_FAT_TYPES.contains(&e.kind) {
            let mut boot = [0u8; 512];
            file.read_exact_at(&mut boot, e.start * SS).map_err(|source| Error::Io { path: path.to_owned(), source })?;
            if fat::is_config_drive(&boot) {
                replaced.push(i);
            }
        }
    }
    let kept = || table.iter().enumerate().filter(|(i, e)| e.kind != 0 && !replaced.contains(i)).map(|(_, e)| e);
    // Logical partitions live inside their extended partition, so its end covers theirs.
    let used_end = kept().map(|e| e.start + e.sectors).max().unwrap_or(1);
    let no_room = || Error::NoRoom { path: path.to_owned(), used_end: used_end * SS, capacity };
    // MBR addresses sectors with 32 bits: on a disk past 2 TiB the partition ends there.
    let end = sectors.min(u64::from(u32::MAX));
    let start = end.checked_sub(size / SS).map(|s| s / (ALIGN / SS) * (ALIGN / SS)).ok_or_else(no_room)?;
    if start < used_end {
        return Err(no_room());
    }
    let slot =
        (0..4).find(|i| table[*i].kind == 0 || replaced.contains(i)).ok_or(Error::TableFull { path: path.to_owned(), table: TableKind::Mbr })?;
    let mut writes = Vec::new();
    for i in replaced.iter().filter(|i| **i != slot) {
        writes.push((entry_offset(*i), vec![0u8; 16]));
    }
    let mut entry = vec![0x00];
    entry.extend(chs(start));
    entry.push(MBR_TYPE);
    entry.extend(chs(start + size / SS - 1));
    entry.extend((start as u32).to_le_bytes());
    entry.extend(((size / SS) as u32).to_le_bytes());
    writes.push((entry_offset(slot), entry));
    let written = Written { table: TableKind::Mbr, number: slot as u32 + 1, start: start * SS, len: size, replaced: !replaced.is_empty() };
    Ok(Changes { written, sector_size: SS, writes })
}

/// A sector's cylinder/head/sector address in the usual 255-head, 63-sector geometry; past
/// cylinder 1023 the "use the LBA" marker.
fn chs(lba: u64) -> [u8; 3] {
    let cylinder = lba / (255 * 63);
    if cylinder > 1023 {
        return [0xFE, 0xFF, 0xFF];
    }
    let head = (lba / 63) % 255;
    let sector = lba % 63 + 1;
    [head as u8, sector as u8 | ((cylinder >> 2) as u8 & 0xC0), cylinder as u8]
}

/// A random-looking (version 4) GUID from the seed, in the GPT's byte order.
fn guid(seed: &[u8; 32]) -> [u8; 16] {
    let mut g = [0u8; 16];
    g.copy_from_slice(&seed[..16]);
    g[7] = (g[7] & 0x0F) | 0x40; // version, in the third field (little-endian)
    g[8] = (g[8] & 0x3F) | 0x80; // variant
    g
}

/// A disk stand-in that keeps what is written, so gptman's writes can be computed (and refused)
/// before anything reaches the disk.
struct Recorder {
    len: u64,
    pos: u64,
    writes: Vec<(u64, Vec<u8>)>,
}

impl Recorder {
    fn new(len: u64) -> Recorder {
        Recorder { len, pos: 0, writes: Vec::new() }
    }
}

impl Write for Recorder {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.writes.last_mut() {
            Some((at, data)) if *at + data.len() as u64 == self.pos => data.extend_from_slice(buf),
            _ => self.writes.push((self.pos, buf.to_vec())),
        }
        self.pos += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for Recorder {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = pos.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}
