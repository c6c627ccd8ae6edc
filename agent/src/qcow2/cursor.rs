//! The served file as the qcow2 reader sees it: one sequential, hashed pass (the sha256 the host
//! recorded covers it) plus Range reads for what the reader needs out of that order. Every byte
//! the reader uses is either taken from the pass, or read by Range and compared with the pass:
//! a read ahead of the pass when the pass crosses it; a read behind it against the digest the
//! pass kept of the bytes it skipped there (QEMU packs compressed clusters into a cluster it
//! keeps filling while later data goes after it, so they trail the pass); and, for bytes the pass
//! used but no longer holds, in a second pass at the end.

use std::collections::BTreeMap;
use std::io::{self, Read};

use metalhost_image_format::ReadAt;
use sha2::{Digest, Sha256};

use crate::decode::{Hashing, Stored};

/// The last stream bytes kept, so a read a little behind the pass needs no Range read: a
/// compressed cluster's length is rounded up to a sector and runs into the next one. Reads
/// further behind are served from skipped pieces; small, as every passed byte is copied here.
pub const LOOKBEHIND: usize = 64 * 1024;
/// Separate out-of-order extents that may wait for the second pass; beyond this the image is
/// too scattered to stream with bounded memory.
const MAX_BEHIND: usize = 1 << 16;
const SKIP_BUF: usize = 256 * 1024;
/// Skipped bytes are digested in pieces this big at most; a read behind the pass fetches the
/// whole piece once (kept in a small cache) and checks it against its digest.
const PIECE: u64 = 1 << 20;
/// Digests kept of skipped pieces (48 bytes each); past this, reads behind wait for a second pass.
const MAX_PIECES: usize = 1 << 18;
const CACHED_PIECES: usize = 4;

/// Bytes used from a Range read, waiting to be compared with the pass.
struct Pending {
    start: u64,
    len: u64,
    used: Sha256,
    seen: Sha256,
    fed: u64,
}

impl Pending {
    fn new(start: u64, data: &[u8]) -> Pending {
        Pending { start, len: data.len() as u64, used: Sha256::new_with_prefix(data), seen: Sha256::new(), fed: 0 }
    }

    /// Feeds the part of `[at, at + data.len())` this extent covers; true once it is whole.
    fn feed(&mut self, at: u64, data: &[u8]) -> bool {
        let from = at.max(self.start + self.fed);
        let to = (at + data.len() as u64).min(self.start + self.len);
        if from < to {
            self.seen.update(&data[(from - at) as usize..(to - at) as usize]);
            self.fed += to - from;
        }
        self.fed == self.len
    }

    fn matches(self) -> bool {
        self.used.finalize() == self.seen.finalize()
    }
}

/// The last `cap` bytes of the pass, in a circular buffer (pages are touched only as it fills).
struct Ring {
    buf: Vec<u8>,
    /// Stream offset just past the newest byte.
    end: u64,
    filled: usize,
}

impl Ring {
    fn new(cap: usize) -> Ring {
        Ring { buf: vec![0u8; cap], end: 0, filled: 0 }
    }

    /// Appends the pass's next bytes.
    fn push(&mut self, data: &[u8]) {
        let cap = self.buf.len();
        let kept = &data[data.len().saturating_sub(cap)..];
        let start = self.end + (data.len() - kept.len()) as u64;
        let at = (start % cap as u64) as usize;
        let first = kept.len().min(cap - at);
        self.buf[at..at + first].copy_from_slice(&kept[..first]);
        self.buf[..kept.len() - first].copy_from_slice(&kept[first..]);
        self.end += data.len() as u64;
        self.filled = (self.filled + data.len()).min(cap);
    }

    /// Whether `[from, to)` is still here.
    fn holds(&self, from: u64, to: u64) -> bool {
        from >= self.end - self.filled as u64 && from <= to && to <= self.end
    }

    fn copy(&self, from: u64, out: &mut [u8]) {
        let cap = self.buf.len();
        let at = (from % cap as u64) as usize;
        let first = out.len().min(cap - at);
        out[..first].copy_from_slice(&self.buf[at..at + first]);
        let rest = out.len() - first;
        out[first..].copy_from_slice(&self.buf[..rest]);
    }
}

fn mismatch(start: u64) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("the bytes at {start} read with Range differ from the streamed file"))
}

pub struct Cursor<S, R> {
    stream: Hashing<S>,
    ranges: R,
    /// A fresh stream from byte 0, for the second pass.
    reopen: Box<dyn FnMut() -> io::Result<S> + Send>,
    /// Range reads at or past the pass, by start.
    ahead: BTreeMap<(u64, u64), Pending>,
    /// Range reads behind the pass, in the order read.
    behind: Vec<Pending>,
    seq: u64,
    recent: Ring,
    skip: Vec<u8>,
    /// Digests of the pieces the pass skipped, by start: (length, sha256).
    skipped: BTreeMap<u64, (u64, [u8; 32])>,
    /// Pieces fetched and checked, newest last.
    cache: Vec<(u64, Vec<u8>)>,
    /// Bytes fetched with Range (for the summary and the benchmark).
    pub range_bytes: u64,
}

impl<S: Read, R: ReadAt<Error = io::Error>> Cursor<S, R> {
    /// `read_before`: what was read with Range before the pass began (the header and L1 table),
    /// to be checked against it too. `lookbehind`: [`LOOKBEHIND`] but in tests.
    pub fn new(
        stream: S,
        hash: bool,
        ranges: R,
        reopen: Box<dyn FnMut() -> io::Result<S> + Send>,
        read_before: Vec<(u64, Vec<u8>)>,
        lookbehind: usize,
    ) -> Cursor<S, R> {
        let mut c = Cursor {
            stream: Hashing::new(stream, hash),
            ranges,
            reopen,
            ahead: BTreeMap::new(),
            behind: Vec::new(),
            seq: 0,
            recent: Ring::new(lookbehind),
            skip: Vec::new(),
            skipped: BTreeMap::new(),
            cache: Vec::new(),
            range_bytes: 0,
        };
        for (offset, data) in read_before {
            c.remember_ahead(offset, &data);
        }
        c
    }

    /// Where the pass is.
    pub fn pos(&self) -> u64 {
        self.stream.stored_bytes()
    }

    pub fn source_error(&self) -> Option<&str> {
        self.stream.source_error()
    }

    fn remember_ahead(&mut self, offset: u64, data: &[u8]) {
        self.seq += 1;
        self.ahead.insert((offset, self.seq), Pending::new(offset, data));
    }

    fn remember_behind(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        // Contiguous reads (a run of clusters) share one digest.
        if let Some(last) = self.behind.last_mut()
            && last.start + last.len == offset
        {
            last.used.update(data);
            last.len += data.len() as u64;
            return Ok(());
        }
        if self.behind.len() >= MAX_BEHIND {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the image's clusters are too scattered to stream (convert it with qemu-img first)",
            ));
        }
        self.behind.push(Pending::new(offset, data));
        Ok(())
    }

    /// Reads from the pass into `buf`, checking pending extents and keeping the look-behind.
    fn pass(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let at = self.pos();
        self.stream.read_exact(buf).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => {
                io::Error::new(io::ErrorKind::InvalidData, format!("the image ends before byte {}", at + buf.len() as u64))
            }
            _ => e,
        })?;
        let end = at + buf.len() as u64;
        let done: Vec<(u64, u64)> = self.ahead.range_mut(..(end, 0)).filter_map(|(key, p)| p.feed(at, buf).then_some(*key)).collect();
        for key in done {
            if let Some(p) = self.ahead.remove(&key)
                && !p.matches()
            {
                return Err(mismatch(key.0));
            }
        }
        self.recent.push(buf);
        Ok(())
    }

    /// Moves the pass forward to `offset`, hashing what it skips and keeping a digest of each
    /// piece of it (pieces end at multiples of [`PIECE`]), for reads that come back for it.
    fn skip_to(&mut self, offset: u64) -> io::Result<()> {
        let mut skip = std::mem::take(&mut self.skip);
        skip.resize(SKIP_BUF, 0);
        while self.pos() < offset {
            let start = self.pos();
            let end = offset.min((start / PIECE + 1) * PIECE);
            let mut piece = Sha256::new();
            while self.pos() < end {
                let n = (end - self.pos()).min(SKIP_BUF as u64) as usize;
                self.pass(&mut skip[..n])?;
                piece.update(&skip[..n]);
            }
            if self.skipped.len() < MAX_PIECES {
                self.skipped.insert(start, (end - start, piece.finalize().into()));
            }
        }
        self.skip = skip;
        Ok(())
    }

    /// Bytes read but not used (the end of a compressed cluster's sector-rounded length, which
    /// holds the start of clusters QEMU packed after it): kept as a piece like skipped bytes.
    pub fn unused(&mut self, offset: u64, bytes: &[u8]) {
        let covered = self.skipped.range(..=offset).next_back().is_some_and(|(s, (l, _))| s + l > offset);
        if !bytes.is_empty() && !covered && self.skipped.len() < MAX_PIECES {
            self.skipped.insert(offset, (bytes.len() as u64, Sha256::digest(bytes).into()));
        }
    }

    /// Serves a read behind the pass from skipped pieces (fetched whole by Range, checked against
    /// their digests); false when some of it was not skipped.
    fn serve_from_pieces(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<bool> {
        let end = offset + buf.len() as u64;
        let mut at = offset;
        let mut pieces = Vec::new();
        while at < end {
            match self.skipped.range(..=at).next_back() {
                Some((start, (len, digest))) if start + len > at => {
                    pieces.push((*start, *len, *digest));
                    at = start + len;
                }
                _ => return Ok(false),
            }
        }
        for (start, len, digest) in pieces {
            if !self.cache.iter().any(|(s, _)| *s == start) {
                let mut bytes = vec![0u8; len as usize];
                self.ranges.read_at(start, &mut bytes)?;
                self.range_bytes += len;
                if <[u8; 32]>::from(Sha256::digest(&bytes)) != digest {
                    return Err(mismatch(start));
                }
                if self.cache.len() >= CACHED_PIECES {
                    self.cache.remove(0);
                }
                self.cache.push((start, bytes));
            }
            let Some((_, bytes)) = self.cache.iter().find(|(s, _)| *s == start) else { return Ok(false) };
            let from = offset.max(start);
            let to = end.min(start + len);
            buf[(from - offset) as usize..(to - offset) as usize].copy_from_slice(&bytes[(from - start) as usize..(to - start) as usize]);
        }
        Ok(true)
    }

    /// Data: from the pass when it is at or ahead of it (the common, single-download case).
    pub fn data(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let pos = self.pos();
        if offset >= pos {
            self.skip_to(offset)?;
            return self.pass(buf);
        }
        if self.recent.holds(offset, pos) {
            // Starts in the look-behind: its head from memory, the rest (if any) from the pass.
            let head = ((pos - offset) as usize).min(buf.len());
            self.recent.copy(offset, &mut buf[..head]);
            return self.pass(&mut buf[head..]);
        }
        self.range(offset, buf)
    }

    /// Tables: by Range unless the pass is right there, so reading one does not make the pass
    /// skip the data that comes before it.
    pub fn table(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let pos = self.pos();
        if offset == pos || offset < pos && self.recent.holds(offset, offset + buf.len() as u64) {
            return self.data(offset, buf);
        }
        self.range(offset, buf)
    }

    fn range(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        if offset < self.pos() && self.serve_from_pieces(offset, buf)? {
            return Ok(());
        }
        self.ranges.read_at(offset, buf)?;
        self.range_bytes += buf.len() as u64;
        if offset >= self.pos() {
            self.remember_ahead(offset, buf);
            Ok(())
        } else {
            self.remember_behind(offset, buf)
        }
    }

    /// Finishes the pass (the rest of the file, hashed), checks every Range read against it,
    /// and returns what the pass saw.
    pub fn finish(mut self) -> io::Result<Stored> {
        let mut rest = vec![0u8; SKIP_BUF];
        loop {
            let at = self.pos();
            let n = self.stream.read(&mut rest)?;
            if n == 0 {
                break;
            }
            // Feed pending extents through the same path as any other passed bytes.
            let done: Vec<(u64, u64)> =
                self.ahead.range_mut(..(at + n as u64, 0)).filter_map(|(key, p)| p.feed(at, &rest[..n]).then_some(*key)).collect();
            for key in done {
                if let Some(p) = self.ahead.remove(&key)
                    && !p.matches()
                {
                    return Err(mismatch(key.0));
                }
            }
        }
        if let Some(((start, _), _)) = self.ahead.first_key_value() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the bytes at {start} read with Range lie past the end of the streamed file"),
            ));
        }
        let behind = std::mem::take(&mut self.behind);
        let stored = self.stream.into_stored();
        if !behind.is_empty() {
            second_pass((self.reopen)()?, behind, &stored)?;
        }
        Ok(stored)
    }
}

/// Streams the file again from byte 0 and compares the extents read behind the first pass; the
/// file must hash the same again, so both passes saw the file the host recorded.
fn second_pass<S: Read>(stream: S, mut behind: Vec<Pending>, first: &Stored) -> io::Result<()> {
    crate::log(format!("second pass over the image to check {} out-of-order extents", behind.len()));
    behind.sort_by_key(|p| p.start);
    let mut stream = Hashing::new(stream, first.sha256.is_some());
    let mut buf = vec![0u8; SKIP_BUF];
    let mut next = 0;
    loop {
        let at = stream.stored_bytes();
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let end = at + n as u64;
        for p in behind.iter_mut().skip(next).take_while(|p| p.start < end) {
            p.feed(at, &buf[..n]);
        }
        while next < behind.len() && behind[next].fed == behind[next].len {
            next += 1;
        }
    }
    let again = stream.into_stored();
    if again != *first {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "the second pass over the image read a different file"));
    }
    for p in behind {
        let start = p.start;
        if p.fed != p.len || !p.matches() {
            return Err(mismatch(start));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Bytes(Vec<u8>, std::sync::Arc<std::sync::atomic::AtomicUsize>);
    impl ReadAt for Bytes {
        type Error = io::Error;
        fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let at = offset as usize;
            buf.copy_from_slice(self.0.get(at..at + buf.len()).ok_or_else(|| io::Error::other("past the end"))?);
            Ok(())
        }
    }

    fn file() -> Vec<u8> {
        (0..1_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 9) as u8).collect()
    }

    fn cursor(stream: Vec<u8>, ranges: Vec<u8>) -> (Cursor<io::Cursor<Vec<u8>>, Bytes>, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let again = stream.clone();
        let reopen = Box::new(move || Ok(io::Cursor::new(again.clone())));
        (Cursor::new(io::Cursor::new(stream), true, Bytes(ranges, count.clone()), reopen, Vec::new(), 4096), count)
    }

    fn get(c: &mut Cursor<io::Cursor<Vec<u8>>, Bytes>, table: bool, offset: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0u8; len];
        if table { c.table(offset, &mut buf) } else { c.data(offset, &mut buf) }.unwrap();
        buf
    }

    #[test]
    fn reads_in_any_order_are_served_and_checked_against_the_pass() {
        let f = file();
        let (mut c, ranges) = cursor(f.clone(), f.clone());
        let requests = || ranges.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(get(&mut c, true, 500_000, 1000), f[500_000..501_000], "a table ahead: Range");
        assert_eq!(get(&mut c, false, 1000, 5000), f[1000..6000], "data ahead: the pass");
        assert_eq!(get(&mut c, false, 5500, 100), f[5500..5600], "just behind: the look-behind");
        assert_eq!(requests(), 1);
        assert_eq!(get(&mut c, false, 10, 20), f[10..30], "behind, in bytes the pass skipped: the piece");
        assert_eq!(get(&mut c, false, 20, 20), f[20..40], "the same piece again: from the cache");
        assert_eq!(requests(), 2);
        assert_eq!(get(&mut c, false, 200_000, 100), f[200_000..200_100]);
        assert_eq!(get(&mut c, false, 1500, 100), f[1500..1600], "behind, in bytes the pass used: Range");
        assert_eq!(requests(), 3);
        let stored = c.finish().unwrap();
        assert_eq!(stored.bytes, f.len() as u64);
        assert_eq!(stored.sha256, Some(hex::encode(Sha256::digest(&f))));
    }

    #[test]
    fn a_range_read_that_differs_from_the_file_fails_each_way() {
        let f = file();
        let mut other = f.clone();
        other[600_000] ^= 1;
        other[20] ^= 1;
        other[1500] ^= 1;
        // Ahead of the pass: when the pass crosses it.
        let (mut c, _) = cursor(f.clone(), other.clone());
        get(&mut c, true, 599_000, 2000);
        let e = c.finish().unwrap_err().to_string();
        assert!(e.contains("bytes at 599000 read with Range differ"), "{e}");
        // In a skipped piece: at once.
        let (mut c, _) = cursor(f.clone(), other.clone());
        get(&mut c, false, 100_000, 10);
        let e = c.data(0, &mut [0u8; 100]).unwrap_err().to_string();
        assert!(e.contains("bytes at 0 read with Range differ"), "{e}");
        // In bytes the pass used and let go: in the second pass.
        let (mut c, _) = cursor(f.clone(), other);
        get(&mut c, false, 1000, 5000);
        get(&mut c, false, 200_000, 10);
        get(&mut c, false, 1500, 100);
        let e = c.finish().unwrap_err().to_string();
        assert!(e.contains("bytes at 1500 read with Range differ"), "{e}");
    }

    #[test]
    fn a_read_past_the_end_is_an_error() {
        let f = file();
        let (mut c, _) = cursor(f[..1000].to_vec(), f.clone());
        let mut buf = vec![0u8; 100];
        let e = c.data(950, &mut buf).unwrap_err().to_string();
        assert_eq!(e, "the image ends before byte 1050");
    }
}
