//! Writing to the target: page-aligned buffers, O_DIRECT on block devices (the unaligned tail
//! through a second, buffered descriptor), positioned writes, fsync, and an uncached read-back.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::{log, sys};

/// O_DIRECT needs buffer address, length and file offset aligned to the logical block size;
/// 4096 covers both 512-byte and 4K-native disks.
pub const ALIGN: usize = 4096;

/// A heap buffer whose usable part starts on an `ALIGN` boundary.
pub struct AlignedBuf {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    pub fn new(len: usize) -> AlignedBuf {
        let storage = vec![0u8; len + ALIGN];
        let start = (ALIGN - storage.as_ptr().addr() % ALIGN) % ALIGN;
        AlignedBuf { storage, start, len }
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }
}

/// Sequential writer to a disk (or a file standing in for one) with positioned writes.
pub struct DiskWriter {
    path: PathBuf,
    buffered: File,
    direct: Option<File>,
    offset: u64,
    /// Set once an unaligned piece went out: anything after it could not be written directly.
    ended: bool,
}

impl DiskWriter {
    /// O_DIRECT on block devices (no page-cache churn for a whole disk), buffered on files.
    pub fn open(path: &Path) -> Result<DiskWriter> {
        let meta = std::fs::metadata(path).map_err(|source| Error::Open { path: path.to_owned(), source })?;
        DiskWriter::open_with(path, meta.file_type().is_block_device())
    }

    pub fn open_with(path: &Path, want_direct: bool) -> Result<DiskWriter> {
        let open_err = |source| Error::Open { path: path.to_owned(), source };
        let buffered = OpenOptions::new().write(true).open(path).map_err(open_err)?;
        let direct = if want_direct {
            match OpenOptions::new().write(true).custom_flags(libc::O_DIRECT).open(path) {
                Ok(f) => Some(f),
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    log(format!("{} does not support O_DIRECT; writing through the page cache", path.display()));
                    None
                }
                Err(e) => return Err(open_err(e)),
            }
        } else {
            None
        };
        Ok(DiskWriter { path: path.to_owned(), buffered, direct, offset: 0, ended: false })
    }

    pub fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// Bytes written so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Appends `data`. In direct mode the aligned head goes straight to the device and the
    /// unaligned rest (only ever the image's last piece) through the page cache.
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        if self.ended && !data.is_empty() {
            return Err(Error::Internal("write after the unaligned last piece"));
        }
        let mut rest = data;
        if let Some(direct) = &self.direct
            && data.as_ptr().addr().is_multiple_of(ALIGN)
            && self.offset.is_multiple_of(ALIGN as u64)
        {
            let aligned = data.len() / ALIGN * ALIGN;
            direct.write_all_at(&data[..aligned], self.offset).map_err(|e| self.write_error(e, self.offset))?;
            self.offset += aligned as u64;
            rest = &data[aligned..];
        }
        if !rest.is_empty() {
            self.buffered.write_all_at(rest, self.offset).map_err(|e| self.write_error(e, self.offset))?;
            // Best effort: an error here changes nothing, the final fsync still decides.
            let _ = sys::start_writeback(&self.buffered, self.offset, rest.len() as u64);
            self.offset += rest.len() as u64;
            self.ended = self.direct.is_some();
        }
        Ok(())
    }

    fn write_error(&self, source: io::Error, offset: u64) -> Error {
        match source.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::WriteZero => Error::NoSpace { path: self.path.clone(), offset },
            _ => Error::Write { path: self.path.clone(), offset, source },
        }
    }

    /// Flushes everything to stable storage (the device's write cache included).
    pub fn finish(self) -> Result<()> {
        let sync = |f: &File| f.sync_all().map_err(|source| Error::Sync { path: self.path.clone(), source });
        if let Some(direct) = &self.direct {
            sync(direct)?;
        }
        sync(&self.buffered)
    }
}

/// How many bytes the target holds: a block device's size; a regular file's length when it has
/// one (tests stand a sized file in for a disk; an empty file grows as written).
pub fn capacity(path: &Path) -> io::Result<Option<u64>> {
    use std::io::{Seek, SeekFrom};
    let meta = std::fs::metadata(path)?;
    if meta.file_type().is_block_device() {
        return File::open(path)?.seek(SeekFrom::End(0)).map(Some);
    }
    Ok((meta.is_file() && meta.len() > 0).then_some(meta.len()))
}

/// sha256 of the first `len` bytes as the medium holds them: cached pages are dropped first.
pub fn read_back_sha256(path: &Path, len: u64) -> io::Result<String> {
    let file = File::open(path)?;
    if let Err(e) = sys::drop_cached_pages(&file) {
        log(format!("read-back of {} may come from the page cache: {e}", path.display()));
    }
    let mut reader = file.take(len);
    let mut buf = AlignedBuf::new(4 << 20);
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    loop {
        let n = reader.read(buf.as_mut_slice())?;
        if n == 0 {
            break;
        }
        hasher.update(&buf.as_slice()[..n]);
        total += n as u64;
    }
    if total < len {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("only {total} of {len} bytes could be read")));
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_buffers_are_aligned() {
        for len in [ALIGN, 3 * ALIGN, 4 << 20] {
            let mut b = AlignedBuf::new(len);
            assert!(b.as_slice().as_ptr().addr().is_multiple_of(ALIGN));
            assert_eq!(b.as_mut_slice().len(), len);
        }
    }

    fn pattern(len: usize, seed: u8) -> AlignedBuf {
        let mut b = AlignedBuf::new(len);
        for (i, x) in b.as_mut_slice().iter_mut().enumerate() {
            *x = (i as u8).wrapping_mul(31).wrapping_add(seed);
        }
        b
    }

    /// The O_DIRECT path on a file (ext4 supports it; tmpfs falls back and must still be right).
    #[test]
    fn direct_writes_with_an_unaligned_tail_land_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        std::fs::write(&path, vec![0xEEu8; 40_000]).unwrap();
        let (a, b) = (pattern(16_384, 1), pattern(8_192 + 1_234, 2));
        let mut w = DiskWriter::open_with(&path, true).unwrap();
        eprintln!("direct: {}", w.is_direct());
        w.write(a.as_slice()).unwrap();
        w.write(b.as_slice()).unwrap();
        if w.is_direct() {
            assert!(matches!(w.write(&[1]), Err(Error::Internal(_))), "nothing may follow the unaligned tail");
        }
        assert_eq!(w.offset(), (16_384 + 9_426) as u64);
        w.finish().unwrap();
        let disk = std::fs::read(&path).unwrap();
        assert_eq!(&disk[..16_384], a.as_slice());
        assert_eq!(&disk[16_384..25_810], b.as_slice());
        assert!(disk[25_810..].iter().all(|x| *x == 0xEE), "bytes past the image are untouched");
        let expected = hex::encode(Sha256::digest(&disk[..25_810]));
        assert_eq!(read_back_sha256(&path, 25_810).unwrap(), expected);
        assert!(read_back_sha256(&path, 50_000).is_err(), "reading past the end is an error");
    }
}
