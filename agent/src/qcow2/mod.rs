//! qcow2 images written as raw while they download (ARCHITECTURE.md, "agent"). [`check`] reads
//! the header and L1 table with Range requests and refuses what the host would have refused,
//! before the disk is opened; [`Qcow2Reader`] then yields the disk's bytes in order, one cluster
//! at a time: stored clusters from the file, compressed ones inflated, unallocated and zero
//! clusters as zeros. Memory: one L2 table, one cluster, the L1 table (capped by the format
//! crate) and the cursor's buffers, whatever the image's size.

mod cursor;

pub use cursor::{Cursor, LOOKBEHIND};

use std::io::{self, Read};

use metalhost_image_format::qcow2::{self, Cluster, ClusterCompression, Header};
use metalhost_image_format::{Detected, Failed, HEAD_LEN, ReadAt, Refusal, inspect_qcow2, sniff};

use crate::decode::{ImageStream, Stored};
use crate::error::{Error, Result};

/// What [`check`] found: enough to convert, and what it read to get there (to be checked
/// against the hashed pass).
pub struct Checked {
    pub header: Header,
    pub l1: Vec<u64>,
    pub file_size: u64,
    pub read_before: Vec<(u64, Vec<u8>)>,
}

/// Keeps a copy of every read, for the cursor to check against the pass.
struct Recording<'a, R> {
    inner: &'a mut R,
    reads: Vec<(u64, Vec<u8>)>,
}

impl<R: ReadAt<Error = io::Error>> ReadAt for Recording<'_, R> {
    type Error = io::Error;
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read_at(offset, buf)?;
        self.reads.push((offset, buf.to_vec()));
        Ok(())
    }
}

/// The host's checks again, on the served file, before anything is written: a qcow2 v2/v3 with
/// no backing or data file, no encryption, its tables inside the file and apart, and a virtual
/// size that fits `capacity` (the target disk's size, when known).
pub fn check<R: ReadAt<Error = io::Error>>(ranges: &mut R, file_size: u64, capacity: Option<u64>) -> Result<Checked> {
    let mut rec = Recording { inner: ranges, reads: Vec::new() };
    let mut head = vec![0u8; file_size.min(HEAD_LEN as u64) as usize];
    rec.read_at(0, &mut head).map_err(|e| Error::Download(e.to_string()))?;
    match sniff(&head) {
        Detected::Qcow2 { .. } => {}
        Detected::Raw => return Err(Error::Refused("declared qcow2 but the file is raw".into())),
        Detected::Foreign(f) => return Err(Error::Refused(Refusal::Foreign(f).to_string())),
    }
    let (header, l1, _) = inspect_qcow2(&mut rec, &head, file_size, false).map_err(|e| match e {
        Failed::Refused(r) => Error::Refused(r.to_string()),
        Failed::Read(e) => Error::Download(e.to_string()),
    })?;
    if let Some(capacity) = capacity
        && header.virtual_size > capacity
    {
        return Err(Error::Refused(format!("the image's virtual size {} is larger than the disk ({capacity} bytes)", header.virtual_size)));
    }
    Ok(Checked { header, l1, file_size, read_before: rec.reads })
}

fn invalid(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

/// The disk's bytes, in order, from a checked qcow2 image.
pub struct Qcow2Reader<S, R> {
    cursor: Cursor<S, R>,
    header: Header,
    l1: Vec<u64>,
    file_size: u64,
    /// The next disk byte to hand out.
    guest: u64,
    /// The L2 table in use: its L1 index and raw entries.
    table: Option<(usize, Vec<u8>)>,
    /// A cluster decoded for a caller whose buffer could not take it whole.
    held: Vec<u8>,
    held_at: u64,
    compressed: Vec<u8>,
    inflate: flate2::Decompress,
}

impl<S: Read, R: ReadAt<Error = io::Error>> Qcow2Reader<S, R> {
    pub fn new(checked: Checked, cursor: Cursor<S, R>) -> Qcow2Reader<S, R> {
        Qcow2Reader {
            cursor,
            header: checked.header,
            l1: checked.l1,
            file_size: checked.file_size,
            guest: 0,
            table: None,
            held: Vec::new(),
            held_at: 0,
            compressed: Vec::new(),
            inflate: flate2::Decompress::new(false),
        }
    }

    fn entry(&mut self, index: usize, offset: u64, in_table: usize) -> io::Result<Cluster> {
        if self.table.as_ref().is_none_or(|(i, _)| *i != index) {
            let mut raw = self.table.take().map(|(_, t)| t).unwrap_or_default();
            raw.resize(self.header.cluster_size() as usize, 0);
            self.cursor.table(offset, &mut raw)?;
            self.table = Some((index, raw));
        }
        let raw = self.table.as_ref().map(|(_, t)| &t[in_table * 8..in_table * 8 + 8]).ok_or_else(|| invalid("no L2 table"))?;
        let mut word = [0u8; 8];
        word.copy_from_slice(raw);
        qcow2::l2_entry(&self.header, u64::from_be_bytes(word), self.file_size).map_err(|r| invalid(r.to_string()))
    }

    /// Inflates one compressed cluster into `out` (a whole cluster).
    fn decompress(&mut self, offset: u64, len: u64, out: &mut [u8]) -> io::Result<()> {
        self.compressed.resize(len as usize, 0);
        let mut input = std::mem::take(&mut self.compressed);
        let read = self.cursor.data(offset, &mut input);
        // Returns how much of the input the cluster took.
        let result = read.and_then(|()| match self.header.compression {
            ClusterCompression::Deflate => {
                self.inflate.reset(false);
                self.inflate.decompress(&input, out, flate2::FlushDecompress::Finish).map_err(|e| invalid(e.to_string()))?;
                let got = self.inflate.total_out();
                if got == out.len() as u64 {
                    Ok(self.inflate.total_in() as usize)
                } else {
                    Err(invalid(format!("inflated to {got} of {} bytes", out.len())))
                }
            }
            ClusterCompression::Zstd => {
                let mut rest = &input[..];
                let mut frame = ruzstd::StreamingDecoder::new(&mut rest).map_err(|e| invalid(e.to_string()))?;
                frame.read_exact(out).map_err(|e| invalid(format!("zstd: {e}")))?;
                drop(frame);
                Ok(input.len() - rest.len())
            }
        });
        if let Ok(used) = result {
            self.cursor.unused(offset + used as u64, &input[used.min(input.len())..]);
        }
        let result = result.map(|_| ());
        self.compressed = input;
        result.map_err(|e| io::Error::new(e.kind(), format!("compressed cluster at byte {offset}: {e}")))
    }
}

impl<S: Read, R: ReadAt<Error = io::Error>> Read for Qcow2Reader<S, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let end = self.header.virtual_size;
        if self.guest >= end || buf.is_empty() {
            return Ok(0);
        }
        let held_end = self.held_at + self.held.len() as u64;
        if (self.held_at..held_end).contains(&self.guest) {
            let from = (self.guest - self.held_at) as usize;
            let n = buf.len().min(self.held.len() - from);
            buf[..n].copy_from_slice(&self.held[from..from + n]);
            self.guest += n as u64;
            return Ok(n);
        }
        let (cluster, span) = (self.header.cluster_size(), self.header.l2_span());
        let index = (self.guest / span) as usize;
        let l2 = *self.l1.get(index).ok_or_else(|| invalid("the L1 table is shorter than the disk"))?;
        if l2 == 0 {
            // A whole L2 table's span never written: zeros.
            let n = buf.len().min((((index as u64 + 1) * span).min(end) - self.guest) as usize);
            buf[..n].fill(0);
            self.guest += n as u64;
            return Ok(n);
        }
        let start = self.guest / cluster * cluster;
        let need = ((start + cluster).min(end) - start) as usize;
        let within = (self.guest - start) as usize;
        match self.entry(index, l2, ((self.guest % span) / cluster) as usize)? {
            Cluster::Zero => {
                let n = buf.len().min(need - within);
                buf[..n].fill(0);
                self.guest += n as u64;
                Ok(n)
            }
            Cluster::Data { offset } if within == 0 && buf.len() >= need => {
                // Stored clusters that follow each other in the file go in one read.
                let in_table = ((self.guest % span) / cluster) as usize;
                let mut run = 1;
                while in_table + run < self.header.l2_entries() as usize
                    && (run + 1) * cluster as usize <= buf.len()
                    && start + run as u64 * cluster < end
                    && self.entry(index, l2, in_table + run)? == (Cluster::Data { offset: offset + run as u64 * cluster })
                {
                    run += 1;
                }
                let len = ((start + run as u64 * cluster).min(end) - start) as usize;
                self.cursor.data(offset, &mut buf[..len])?;
                self.guest += len as u64;
                Ok(len)
            }
            Cluster::Compressed { offset, len } if within == 0 && buf.len() >= cluster as usize => {
                self.decompress(offset, len, &mut buf[..cluster as usize])?;
                self.guest += need as u64;
                Ok(need)
            }
            found => {
                // The caller's buffer cannot take the cluster whole: decode it aside.
                let mut held = std::mem::take(&mut self.held);
                held.resize(cluster as usize, 0);
                match found {
                    Cluster::Data { offset } => self.cursor.data(offset, &mut held[..need])?,
                    Cluster::Compressed { offset, len } => self.decompress(offset, len, &mut held)?,
                    Cluster::Zero => held.fill(0),
                }
                held.truncate(need);
                self.held = held;
                self.held_at = start;
                self.read(buf)
            }
        }
    }
}

impl<S: Read, R: ReadAt<Error = io::Error>> ImageStream for Qcow2Reader<S, R> {
    fn name(&self) -> &'static str {
        "qcow2"
    }

    fn stored_offset(&self) -> u64 {
        self.cursor.pos()
    }

    fn source_error(&self) -> Option<&str> {
        self.cursor.source_error()
    }

    fn finish(self) -> io::Result<Stored> {
        if self.guest < self.header.virtual_size {
            return Err(invalid(format!("stopped at disk byte {} of {}", self.guest, self.header.virtual_size)));
        }
        let out_of_order = self.cursor.range_bytes;
        let stored = self.cursor.finish()?;
        crate::log(format!("qcow2: {} bytes streamed, {out_of_order} more read with Range", stored.bytes));
        Ok(stored)
    }
}

#[cfg(test)]
mod tests;
