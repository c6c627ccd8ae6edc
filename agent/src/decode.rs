//! Turns the stored image stream into disk bytes (none, gzip, zstd), hashing the stored bytes on
//! the way in so the sha256 covers exactly what the host served, compressed or not.

use std::io::{self, BufRead, BufReader, Read};

use metalhost_wire::Compression;
use sha2::{Digest, Sha256};

/// Hashes and counts what passes through it: the image as stored, before decompression.
pub struct Hashing<R> {
    inner: R,
    hasher: Option<Sha256>,
    bytes: u64,
    /// The source's own error, kept so a failure can be told apart from a decompression one.
    source_error: Option<String>,
}

impl<R: Read> Hashing<R> {
    /// `hash: false` only counts (the benchmark's no-sha256 run).
    pub fn new(inner: R, hash: bool) -> Hashing<R> {
        Hashing { inner, hasher: hash.then(Sha256::new), bytes: 0, source_error: None }
    }
}

impl<R> Hashing<R> {
    /// Bytes read so far.
    pub fn stored_bytes(&self) -> u64 {
        self.bytes
    }

    /// The source's own error, if it failed.
    pub fn source_error(&self) -> Option<&str> {
        self.source_error.as_deref()
    }

    /// The digest of everything read.
    pub fn into_stored(self) -> Stored {
        Stored { sha256: self.hasher.map(|h| hex::encode(h.finalize())), bytes: self.bytes }
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf).inspect_err(|e| self.source_error = Some(e.to_string()))?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        self.bytes += n as u64;
        Ok(n)
    }
}

/// What was read from the source: its sha256 (when hashing) and length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub sha256: Option<String>,
    pub bytes: u64,
}

/// The disk's bytes from a served image, whatever its format: read it to the end, then
/// `finish` says what was served (its sha256 and length).
pub trait ImageStream: Read {
    /// For error messages: `raw`, `gzip`, `zstd`, `qcow2`.
    fn name(&self) -> &'static str;
    /// Stored bytes consumed so far.
    fn stored_offset(&self) -> u64;
    /// The error the source (not the decoding) failed with, if it did.
    fn source_error(&self) -> Option<&str>;
    fn finish(self) -> io::Result<Stored>;
}

impl<R: Read> ImageStream for Decoder<R> {
    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Plain(_) => "raw",
            Kind::Gzip(_) => "gzip",
            Kind::Zstd(_) => "zstd",
        }
    }

    fn stored_offset(&self) -> u64 {
        Decoder::stored_offset(self)
    }

    fn source_error(&self) -> Option<&str> {
        Decoder::source_error(self)
    }

    fn finish(self) -> io::Result<Stored> {
        Decoder::finish(self)
    }
}

/// A decompressing reader over a hashing one. Multi-member gzip and multi-frame zstd streams are
/// decoded whole: stopping after the first member would write a truncated image whose stored
/// sha256 still matches.
pub struct Decoder<R: Read> {
    kind: Kind<R>,
}

enum Kind<R: Read> {
    Plain(Hashing<R>),
    Gzip(Box<flate2::read::MultiGzDecoder<Hashing<R>>>),
    Zstd(Box<ZstdFrames<R>>),
}

impl<R: Read> Decoder<R> {
    pub fn new(source: R, compression: Compression, hash: bool) -> Decoder<R> {
        let hashing = Hashing::new(source, hash);
        let kind = match compression {
            Compression::None => Kind::Plain(hashing),
            Compression::Gzip => Kind::Gzip(Box::new(flate2::read::MultiGzDecoder::new(hashing))),
            Compression::Zstd => Kind::Zstd(Box::new(ZstdFrames { state: ZState::Between(BufReader::with_capacity(1 << 20, hashing)) })),
        };
        Decoder { kind }
    }

    /// Stored bytes consumed so far (for error messages).
    pub fn stored_offset(&self) -> u64 {
        match &self.kind {
            Kind::Plain(h) => h.bytes,
            Kind::Gzip(d) => d.get_ref().bytes,
            Kind::Zstd(z) => z.hashing().map_or(0, |h| h.bytes),
        }
    }

    /// The error the source (not the decompressor) failed with, if it did.
    pub fn source_error(&self) -> Option<&str> {
        let hashing = match &self.kind {
            Kind::Plain(h) => Some(h),
            Kind::Gzip(d) => Some(d.get_ref()),
            Kind::Zstd(z) => z.hashing(),
        };
        hashing.and_then(|h| h.source_error.as_deref())
    }

    /// Reads what is left of the stored stream (nothing, for a well-formed image) and returns
    /// the digest of everything read.
    pub fn finish(self) -> io::Result<Stored> {
        let mut hashing = match self.kind {
            Kind::Plain(h) => h,
            Kind::Gzip(d) => d.into_inner(),
            Kind::Zstd(z) => z.into_hashing().ok_or_else(|| io::Error::other("zstd decoder lost its stream"))?,
        };
        io::copy(&mut hashing, &mut io::sink())?;
        Ok(hashing.into_stored())
    }
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.kind {
            Kind::Plain(r) => r.read(buf),
            Kind::Gzip(r) => r.read(buf),
            Kind::Zstd(r) => r.read(buf),
        }
    }
}

type ZstdFrame<R> = ruzstd::StreamingDecoder<BufReader<Hashing<R>>, ruzstd::FrameDecoder>;

/// Consecutive zstd frames, each checked against its content checksum when it has one.
struct ZstdFrames<R: Read> {
    state: ZState<R>,
}

enum ZState<R: Read> {
    Between(BufReader<Hashing<R>>),
    In(Box<ZstdFrame<R>>),
    Poisoned,
}

impl<R: Read> ZstdFrames<R> {
    fn hashing(&self) -> Option<&Hashing<R>> {
        match &self.state {
            ZState::Between(r) => Some(r.get_ref()),
            ZState::In(d) => Some(d.get_ref().get_ref()),
            ZState::Poisoned => None,
        }
    }

    fn into_hashing(self) -> Option<Hashing<R>> {
        match self.state {
            ZState::Between(r) => Some(r.into_inner()),
            ZState::In(d) => Some(d.into_inner().into_inner()),
            ZState::Poisoned => None,
        }
    }
}

impl<R: Read> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match std::mem::replace(&mut self.state, ZState::Poisoned) {
                ZState::In(mut frame) => {
                    let n = frame.read(buf)?;
                    if n > 0 {
                        self.state = ZState::In(frame);
                        return Ok(n);
                    }
                    let (source, decoder) = frame.into_parts();
                    if let (Some(stored), Some(computed)) = (decoder.get_checksum_from_data(), decoder.get_calculated_checksum())
                        && stored != computed
                    {
                        return Err(io::Error::new(io::ErrorKind::InvalidData, "zstd frame checksum mismatch"));
                    }
                    self.state = ZState::Between(source);
                }
                ZState::Between(mut source) => {
                    if source.fill_buf()?.is_empty() {
                        self.state = ZState::Between(source);
                        return Ok(0);
                    }
                    let frame = ruzstd::StreamingDecoder::new(source).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    self.state = ZState::In(Box::new(frame));
                }
                ZState::Poisoned => return Err(io::Error::other("zstd decoder failed earlier")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    pub fn sample(len: usize) -> Vec<u8> {
        let mut x = 0x2545F4914F6CDD1Du64;
        (0..len)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if i % 3 == 0 { (x & 0x0f) as u8 } else { (x >> 24) as u8 }
            })
            .collect()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    /// The real `zstd` tool (installed by scripts/setup), with its default content checksum.
    fn zstd(data: &[u8]) -> Vec<u8> {
        let mut child = Command::new("zstd").args(["-c", "-q", "-3"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let data = data.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&data));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(out.status.success());
        out.stdout
    }

    /// Reads in odd-sized pieces, as a network would deliver.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.1 = self.1 % 7919 + 1;
            let n = buf.len().min(self.0.len()).min(self.1 * 13);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn decode(stored: &[u8], compression: Compression) -> io::Result<(Vec<u8>, Stored)> {
        let mut d = Decoder::new(Trickle(stored, 0), compression, true);
        let mut out = Vec::new();
        d.read_to_end(&mut out)?;
        Ok((out, d.finish()?))
    }

    fn sha(b: &[u8]) -> Option<String> {
        Some(hex::encode(Sha256::digest(b)))
    }

    #[test]
    fn every_compression_streams_back_the_raw_bytes_and_hashes_the_stored_ones() {
        let raw = sample(3 << 20);
        for (compression, stored) in [(Compression::None, raw.clone()), (Compression::Gzip, gzip(&raw)), (Compression::Zstd, zstd(&raw))] {
            let (out, digest) = decode(&stored, compression).unwrap();
            assert!(out == raw, "{compression:?}: output differs");
            assert_eq!(digest, Stored { sha256: sha(&stored), bytes: stored.len() as u64 }, "{compression:?}");
        }
    }

    #[test]
    fn concatenated_members_and_frames_are_all_decoded() {
        let (a, b) = (sample(700_000), sample(300_001));
        let whole = [a.clone(), b.clone()].concat();
        for (compression, stored) in [(Compression::Gzip, [gzip(&a), gzip(&b)].concat()), (Compression::Zstd, [zstd(&a), zstd(&b)].concat())] {
            let (out, digest) = decode(&stored, compression).unwrap();
            assert_eq!(out.len(), whole.len(), "{compression:?}: the second member was dropped");
            assert!(out == whole);
            assert_eq!(digest.sha256, sha(&stored));
        }
    }

    #[test]
    fn truncated_or_corrupt_compressed_streams_are_errors() {
        let raw = sample(1 << 20);
        for (compression, stored) in [(Compression::Gzip, gzip(&raw)), (Compression::Zstd, zstd(&raw))] {
            assert!(decode(&stored[..stored.len() / 2], compression).is_err(), "{compression:?} truncated");
            let mut bad = stored.clone();
            let at = bad.len() - 6;
            bad[at] ^= 0x55;
            assert!(decode(&bad, compression).is_err(), "{compression:?} corrupt");
        }
    }

    #[test]
    fn without_hashing_only_the_length_is_known() {
        let raw = sample(10_000);
        let mut d = Decoder::new(&raw[..], Compression::None, false);
        io::copy(&mut d, &mut io::sink()).unwrap();
        assert_eq!(d.finish().unwrap(), Stored { sha256: None, bytes: 10_000 });
    }
}
