//! The config drive's filesystem, built in memory: FAT16 labelled `config-2`, the files in their
//! directories, long (VFAT) names for all of them. Written here rather than with the `fatfs`
//! crate: its last release (0.3.6) puts long-name entries before every new directory's `.` and
//! `..`, which `fsck.fat` rejects. A handful of small files laid out once needs little: a boot
//! sector, two FATs, the root directory, contiguous clusters. No clock: same files, same bytes.

use std::collections::BTreeMap;

use super::{Error, LABEL, MAX_CONTENT};

/// 2 KiB clusters (one sector on a 4 KiB-sector disk: Linux mounts no FAT whose sectors are
/// smaller than the disk's).
const CLUSTER_MIN: usize = 2048;
const ROOT_ENTRIES: usize = 512;
const ENTRY: usize = 32;
const ATTR_DIRECTORY: u8 = 0x10;
const ATTR_ARCHIVE: u8 = 0x20;
const ATTR_VOLUME: u8 = 0x08;
const ATTR_LONG_NAME: u8 = 0x0F;
/// 1980-01-01, FAT's first day, on every entry.
const DATE: u16 = (1 << 5) | 1;

/// A directory of the tree the paths describe.
#[derive(Default)]
struct Dir<'a> {
    dirs: BTreeMap<&'a str, Dir<'a>>,
    files: BTreeMap<&'a str, &'a [u8]>,
}

impl Dir<'_> {
    /// Entries this directory holds (its `.` and `..` not counted).
    fn entries(&self) -> usize {
        self.dirs.keys().chain(self.files.keys()).map(|name| long_entries(name) + 1).sum()
    }
}

/// `files` as a FAT16 filesystem of `size` bytes in `sector`-byte sectors (the disk's); `hidden`
/// is the partition's first sector.
pub fn build(files: &[(&str, &[u8])], size: u64, sector: usize, volume_id: u32, hidden: u32) -> Result<Vec<u8>, Error> {
    let content: usize = files.iter().map(|(_, data)| data.len()).sum();
    if content > MAX_CONTENT {
        return Err(Error::TooBig(content));
    }
    let mut root = Dir::default();
    for (path, data) in files {
        insert(&mut root, path, data)?;
    }
    let mut fs = Fat16::new(usize::try_from(size).map_err(|_| Error::TooBig(content))?, sector, volume_id, hidden)?;
    let mut entries = vec![volume_label_entry()];
    entries.extend(fs.place(&root, 0)?);
    if entries.len() > ROOT_ENTRIES {
        return Err(Error::TooBig(content));
    }
    let at = fs.root_start;
    fs.image[at..at + entries.len() * ENTRY].copy_from_slice(&entries.concat());
    Ok(fs.finish())
}

fn insert<'a>(root: &mut Dir<'a>, path: &'a str, data: &'a [u8]) -> Result<(), Error> {
    let bad = || Error::BadPath(path.to_owned());
    let invalid = |c: char| c.is_control() || "\\:*?\"<>|".contains(c);
    let parts: Vec<&str> = path.split('/').collect();
    let Some((name, dirs)) = parts.split_last() else { return Err(bad()) };
    if parts.iter().any(|p| p.is_empty() || *p == "." || *p == ".." || p.chars().any(invalid) || p.encode_utf16().count() > 255) {
        return Err(bad());
    }
    let mut dir = root;
    for d in dirs {
        if dir.files.contains_key(d) {
            return Err(bad());
        }
        dir = dir.dirs.entry(d).or_default();
    }
    if dir.dirs.contains_key(name) || dir.files.insert(name, data).is_some() {
        return Err(bad());
    }
    Ok(())
}

struct Fat16 {
    image: Vec<u8>,
    cluster: usize,
    fat: Vec<u16>,
    next_cluster: usize,
    fat_start: usize,
    /// One FAT's size on disk.
    fat_bytes: usize,
    root_start: usize,
    data_start: usize,
}

impl Fat16 {
    fn new(size: usize, sector: usize, volume_id: u32, hidden: u32) -> Result<Fat16, Error> {
        if ![512, 1024, 2048, 4096].contains(&sector) {
            return Err(Error::Fat(format!("{sector}-byte sectors")));
        }
        let per_cluster = CLUSTER_MIN.div_ceil(sector);
        let sectors = size / sector;
        let root_sectors = ROOT_ENTRIES * ENTRY / sector;
        // Big enough for every cluster the data area could have (slightly over: fine).
        let fat_sectors = ((sectors / per_cluster + 2) * 2).div_ceil(sector);
        let data_sector = 1 + 2 * fat_sectors + root_sectors;
        let clusters = sectors.saturating_sub(data_sector) / per_cluster;
        // FAT16 is what the cluster count says it is: at least 4085, fewer than 65525.
        let total = u32::try_from(sectors).ok().filter(|_| (4085..65525).contains(&clusters));
        let Some(total) = total else { return Err(Error::Fat(format!("{size} bytes is not a FAT16 size"))) };
        // The sector count goes in the 16-bit field when it fits, else in the 32-bit one.
        let (total16, total32) = u16::try_from(total).map_or((0, total), |t| (t, 0));
        let mut image = vec![0u8; size];
        let boot = &mut image[..sector];
        boot[..3].copy_from_slice(&[0xEB, 0x3C, 0x90]);
        boot[3..11].copy_from_slice(b"MSWIN4.1");
        boot[11..13].copy_from_slice(&(sector as u16).to_le_bytes());
        boot[13] = per_cluster as u8;
        boot[14..16].copy_from_slice(&1u16.to_le_bytes()); // reserved sectors: the boot sector
        boot[16] = 2; // FATs
        boot[17..19].copy_from_slice(&(ROOT_ENTRIES as u16).to_le_bytes());
        boot[19..21].copy_from_slice(&total16.to_le_bytes());
        boot[21] = 0xF8; // fixed disk
        boot[22..24].copy_from_slice(&(fat_sectors as u16).to_le_bytes());
        boot[24..26].copy_from_slice(&63u16.to_le_bytes());
        boot[26..28].copy_from_slice(&255u16.to_le_bytes());
        boot[28..32].copy_from_slice(&hidden.to_le_bytes());
        boot[32..36].copy_from_slice(&total32.to_le_bytes());
        boot[36] = 0x80;
        boot[38] = 0x29; // the next three fields are there
        boot[39..43].copy_from_slice(&volume_id.to_le_bytes());
        boot[43..54].copy_from_slice(&label());
        boot[54..62].copy_from_slice(b"FAT16   ");
        boot[510..512].copy_from_slice(&[0x55, 0xAA]);
        let mut fat = vec![0u16; clusters + 2];
        fat[0] = 0xFFF8;
        fat[1] = 0xFFFF;
        Ok(Fat16 {
            image,
            cluster: per_cluster * sector,
            fat,
            next_cluster: 2,
            fat_start: sector,
            fat_bytes: fat_sectors * sector,
            root_start: (1 + 2 * fat_sectors) * sector,
            data_start: data_sector * sector,
        })
    }

    /// `n` contiguous clusters chained in the FAT; the first one's number (0 for none).
    fn alloc(&mut self, bytes: usize) -> Result<usize, Error> {
        let n = bytes.div_ceil(self.cluster);
        if n == 0 {
            return Ok(0);
        }
        let first = self.next_cluster;
        if first + n > self.fat.len() {
            return Err(Error::Fat("the files do not fit".into()));
        }
        for c in first..first + n {
            self.fat[c] = if c + 1 == first + n { 0xFFFF } else { (c + 1) as u16 };
        }
        self.next_cluster += n;
        Ok(first)
    }

    fn cluster_offset(&self, cluster: usize) -> usize {
        self.data_start + (cluster - 2) * self.cluster
    }

    /// Lays out `dir`'s children (their clusters and contents) and returns `dir`'s entries.
    fn place(&mut self, dir: &Dir, own: usize) -> Result<Vec<[u8; ENTRY]>, Error> {
        let mut entries = Vec::new();
        let mut short = ShortNames::default();
        for (name, child) in &dir.dirs {
            let first = self.alloc((child.entries() + 2) * ENTRY)?;
            let mut inner = vec![short_entry(*b".          ", ATTR_DIRECTORY, first, 0), short_entry(*b"..         ", ATTR_DIRECTORY, own, 0)];
            inner.extend(self.place(child, first)?);
            let at = self.cluster_offset(first);
            self.image[at..at + inner.len() * ENTRY].copy_from_slice(&inner.concat());
            entries.extend(named_entries(name, short.next(name), ATTR_DIRECTORY, first, 0));
        }
        for (name, data) in &dir.files {
            let first = self.alloc(data.len())?;
            if first != 0 {
                let at = self.cluster_offset(first);
                self.image[at..at + data.len()].copy_from_slice(data);
            }
            entries.extend(named_entries(name, short.next(name), ATTR_ARCHIVE, first, data.len() as u32));
        }
        Ok(entries)
    }

    fn finish(mut self) -> Vec<u8> {
        let fat: Vec<u8> = self.fat.iter().flat_map(|e| e.to_le_bytes()).collect();
        for copy in 0..2 {
            let at = self.fat_start + copy * self.fat_bytes;
            self.image[at..at + fat.len()].copy_from_slice(&fat);
        }
        self.image
    }
}

/// The label as the boot sector holds it: 11 bytes, space padded.
pub fn label() -> [u8; 11] {
    let mut label = [b' '; 11];
    label[..LABEL.len()].copy_from_slice(LABEL.as_bytes());
    label
}

/// Whether a FAT boot sector carries the `config-2` label (FAT12/16 or FAT32 layout), any case.
pub fn is_config_drive(boot: &[u8]) -> bool {
    let label_at =
        |signature: usize, at: usize| boot.get(signature) == Some(&0x29) && boot.get(at..at + 11).is_some_and(|l| l.eq_ignore_ascii_case(&label()));
    boot.get(510..512) == Some(&[0x55, 0xAA]) && (label_at(38, 43) || label_at(66, 71))
}

/// The root directory's first entry, the label as `mkfs.fat -n` also writes it.
fn volume_label_entry() -> [u8; ENTRY] {
    short_entry(label(), ATTR_VOLUME, 0, 0)
}

fn short_entry(name: [u8; 11], attr: u8, cluster: usize, size: u32) -> [u8; ENTRY] {
    let mut e = [0u8; ENTRY];
    e[..11].copy_from_slice(&name);
    e[11] = attr;
    for at in [16, 18, 24] {
        e[at..at + 2].copy_from_slice(&DATE.to_le_bytes()); // created, accessed, modified
    }
    e[26..28].copy_from_slice(&(cluster as u16).to_le_bytes());
    e[28..32].copy_from_slice(&size.to_le_bytes());
    e
}

/// Long-name entries needed for `name`: 13 UTF-16 units each.
fn long_entries(name: &str) -> usize {
    name.encode_utf16().count().div_ceil(13)
}

/// A name's long-name entries (last part first, as stored) and then its short entry.
fn named_entries(name: &str, short: [u8; 11], attr: u8, cluster: usize, size: u32) -> Vec<[u8; ENTRY]> {
    let checksum = short.iter().fold(0u8, |sum, b| sum.rotate_right(1).wrapping_add(*b));
    let mut units: Vec<u16> = name.encode_utf16().collect();
    let count = long_entries(name);
    if units.len() < count * 13 {
        units.push(0);
    }
    units.resize(count * 13, 0xFFFF);
    let mut entries: Vec<[u8; ENTRY]> = (0..count)
        .rev()
        .map(|i| {
            let mut e = [0u8; ENTRY];
            e[0] = (i + 1) as u8 | if i + 1 == count { 0x40 } else { 0 };
            e[11] = ATTR_LONG_NAME;
            e[13] = checksum;
            let part = &units[i * 13..i * 13 + 13];
            let slots = (1..11).step_by(2).chain((14..26).step_by(2)).chain((28..32).step_by(2));
            for (at, unit) in slots.zip(part) {
                e[at..at + 2].copy_from_slice(&unit.to_le_bytes());
            }
            e
        })
        .collect();
    entries.push(short_entry(short, attr, cluster, size));
    entries
}

/// Short (8.3) names that only need to be valid and unique in their directory: the long name
/// is the one anyone reads. `NAME~N.EXT` from the name's letters and digits.
#[derive(Default)]
struct ShortNames {
    n: usize,
}

impl ShortNames {
    fn next(&mut self, name: &str) -> [u8; 11] {
        self.n += 1;
        let clean = |s: &str| s.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_uppercase() as u8).collect::<Vec<u8>>();
        let (stem, ext) = match name.rsplit_once('.') {
            Some((stem, ext)) if !stem.is_empty() => (clean(stem), clean(ext)),
            _ => (clean(name), Vec::new()),
        };
        let tail = format!("~{}", self.n).into_bytes();
        let mut short = [b' '; 11];
        let mut base: Vec<u8> = if stem.is_empty() { b"F".to_vec() } else { stem };
        base.truncate(8 - tail.len());
        base.extend(tail);
        short[..base.len()].copy_from_slice(&base);
        for (slot, b) in short[8..].iter_mut().zip(ext.iter().take(3)) {
            *slot = *b;
        }
        short
    }
}
